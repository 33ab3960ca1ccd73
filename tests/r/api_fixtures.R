# Golden values for blinameta's public API printing (print.rma) and metafor's default control.
#
# Run by hand from the repository root:   Rscript tests/r/api_fixtures.R
# Writes tests/fixtures/api/print.json: for each model, the R call, the data, and the text that
# print() gives (metafor's print.rma.uni / print.rma.glmm), once with tight convergence control and
# once with metafor's defaults (the `--control metafor` switch of `blinameta pool`).

suppressPackageStartupMessages(library(metafor))
library(jsonlite)

out_dir <- file.path("tests", "fixtures", "api")
dir.create(out_dir, recursive = TRUE, showWarnings = FALSE)
ctrl <- list(threshold = 1e-12, tol = 1e-12, maxiter = 10000)

dat <- escalc(measure = "RR", ai = tpos, bi = tneg, ci = cpos, di = cneg, data = dat.bcg)
xi <- c(27, 58, 6, 18, 11, 21, 0, 1)
ni <- c(70, 98, 13, 25, 12, 26, 15, 9)

cases <- list(
  list(id = "bcg_reml", call = "rma(yi, vi, data=dat)", yi = dat$yi, vi = dat$vi,
       fit = function(c) rma(yi, vi, data = dat, control = c)),
  list(id = "bcg_reml_knha", call = "rma(yi, vi, data=dat, test='knha')", yi = dat$yi, vi = dat$vi,
       fit = function(c) rma(yi, vi, data = dat, test = "knha", control = c)),
  list(id = "bcg_dl_ablat", call = "rma(yi, vi, mods=~ablat, data=dat, method='DL')",
       yi = dat$yi, vi = dat$vi, ablat = dat$ablat,
       fit = function(c) rma(yi, vi, mods = ~ablat, data = dat, method = "DL", control = c)),
  list(id = "bcg_reml_ablat_knha", call = "rma(yi, vi, mods=~ablat, data=dat, test='knha')",
       yi = dat$yi, vi = dat$vi, ablat = dat$ablat,
       fit = function(c) rma(yi, vi, mods = ~ablat, data = dat, test = "knha", control = c)),
  list(id = "bcg_ee", call = "rma(yi, vi, data=dat, method='EE')", yi = dat$yi, vi = dat$vi,
       fit = function(c) rma(yi, vi, data = dat, method = "EE", control = c)),
  list(id = "plo_pm", call = "rma(measure='PLO', xi=xi, ni=ni, method='PM')", xi = xi, ni = ni,
       fit = function(c) rma(measure = "PLO", xi = xi, ni = ni, method = "PM", control = c))
)

blocks <- lapply(cases, function(case) {
  tight <- case$fit(ctrl)
  default <- case$fit(list())
  out <- case[setdiff(names(case), "fit")]
  out$print_tight <- paste(capture.output(print(tight)), collapse = "\n")
  out$print_default <- paste(capture.output(print(default)), collapse = "\n")
  out$default_beta <- as.numeric(coef(default))
  out$default_tau2 <- default$tau2
  out$default_qm <- default$QM
  out$default_zval <- as.numeric(default$zval)
  out
})

# Mantel-Haenszel and Peto (print.rma.mh / print.rma.peto), dat.bcg and a sparse data set with a
# double-zero table
sparse <- data.frame(ai = c(0, 2, 0, 5, 1), n1i = c(20, 25, 15, 40, 30), ci = c(1, 0, 0, 8, 3), n2i = c(20, 24, 15, 41, 30))
mh_cases <- list(
  list(id = "bcg_mh_or", call = "rma.mh(ai=tpos, bi=tneg, ci=cpos, di=cneg, data=dat.bcg, measure='OR')",
       ai = dat.bcg$tpos, n1i = dat.bcg$tpos + dat.bcg$tneg, ci = dat.bcg$cpos, n2i = dat.bcg$cpos + dat.bcg$cneg,
       fit = function() rma.mh(ai = tpos, bi = tneg, ci = cpos, di = cneg, data = dat.bcg, measure = "OR")),
  list(id = "bcg_mh_rr", call = "rma.mh(..., measure='RR')",
       ai = dat.bcg$tpos, n1i = dat.bcg$tpos + dat.bcg$tneg, ci = dat.bcg$cpos, n2i = dat.bcg$cpos + dat.bcg$cneg,
       fit = function() rma.mh(ai = tpos, bi = tneg, ci = cpos, di = cneg, data = dat.bcg, measure = "RR")),
  list(id = "bcg_mh_rd", call = "rma.mh(..., measure='RD')",
       ai = dat.bcg$tpos, n1i = dat.bcg$tpos + dat.bcg$tneg, ci = dat.bcg$cpos, n2i = dat.bcg$cpos + dat.bcg$cneg,
       fit = function() rma.mh(ai = tpos, bi = tneg, ci = cpos, di = cneg, data = dat.bcg, measure = "RD")),
  list(id = "bcg_peto", call = "rma.peto(ai=tpos, bi=tneg, ci=cpos, di=cneg, data=dat.bcg)",
       ai = dat.bcg$tpos, n1i = dat.bcg$tpos + dat.bcg$tneg, ci = dat.bcg$cpos, n2i = dat.bcg$cpos + dat.bcg$cneg,
       fit = function() rma.peto(ai = tpos, bi = tneg, ci = cpos, di = cneg, data = dat.bcg)),
  list(id = "sparse_mh_or", call = "rma.mh(ai, n1i=, ci, n2i=, data=sparse, measure='OR')",
       ai = sparse$ai, n1i = sparse$n1i, ci = sparse$ci, n2i = sparse$n2i,
       fit = function() rma.mh(ai = ai, n1i = n1i, ci = ci, n2i = n2i, data = sparse, measure = "OR")),
  list(id = "sparse_peto", call = "rma.peto(ai, n1i=, ci, n2i=, data=sparse)",
       ai = sparse$ai, n1i = sparse$n1i, ci = sparse$ci, n2i = sparse$n2i,
       fit = function() suppressWarnings(rma.peto(ai = ai, n1i = n1i, ci = ci, n2i = n2i, data = sparse)))
)
mh_blocks <- lapply(mh_cases, function(case) {
  out <- case[setdiff(names(case), "fit")]
  out$print <- paste(capture.output(print(suppressWarnings(case$fit()))), collapse = "\n")
  out
})

obj <- list(r_version = R.version.string, metafor_version = as.character(packageVersion("metafor")),
            generated_by = "tests/r/api_fixtures.R", date = format(Sys.Date()), blocks = blocks,
            mh_blocks = mh_blocks)
writeLines(toJSON(obj, auto_unbox = TRUE, digits = NA, na = "null", null = "null", pretty = TRUE),
           file.path(out_dir, "print.json"))
