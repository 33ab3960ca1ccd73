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

obj <- list(r_version = R.version.string, metafor_version = as.character(packageVersion("metafor")),
            generated_by = "tests/r/api_fixtures.R", date = format(Sys.Date()), blocks = blocks)
writeLines(toJSON(obj, auto_unbox = TRUE, digits = NA, na = "null", null = "null", pretty = TRUE),
           file.path(out_dir, "print.json"))
