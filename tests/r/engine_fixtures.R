# Golden values for the engine methods added for few, small studies (issue 11), from metafor.
#
# Run by hand from the repository root:   Rscript tests/r/engine_fixtures.R
# Writes tests/fixtures/engine/*.json:
#   mh_peto.json   rma.mh (OR, RR, RD) and rma.peto on 2x2 data sets with zero cells,
#                  double-zero tables and k = 2, under several add/to/drop00/correct settings;
#   tests_pi.json  rma.uni with test = "z", "t", "knha", "adhoc" and predict(pi.type = ...);
#   peters.json    regtest(model = "lm", predictor = "ninv") (Peters' test);
#   glmm_pool.json rma.glmm with a moderator and predict(newmods =, pi.type =), the data of
#                  tests/fixtures/engine/glmm_pool.csv (used by `blinameta pool --method GLMM`).
# Every block records the exact R call; every file the R and metafor versions. The tests read
# these files and never need R. rma.uni runs with control=list(threshold=1e-12, tol=1e-12).

suppressPackageStartupMessages({
  library(metafor)
  library(lme4)
  library(jsonlite)
})

args <- commandArgs(trailingOnly = FALSE)
file_arg <- args[grep("^--file=", args)]
root <- if (length(file_arg)) normalizePath(file.path(dirname(sub("^--file=", "", file_arg)), "..", "..")) else getwd()
out_dir <- file.path(root, "tests", "fixtures", "engine")
dir.create(out_dir, recursive = TRUE, showWarnings = FALSE)

meta <- list(
  r_version = R.version.string,
  metafor_version = as.character(packageVersion("metafor")),
  lme4_version = as.character(packageVersion("lme4")),
  generated_by = "tests/r/engine_fixtures.R"
)
ctrl <- list(threshold = 1e-12, tol = 1e-12, maxiter = 10000)

write_fixture <- function(name, blocks) {
  obj <- c(meta, list(blocks = blocks))
  txt <- toJSON(obj, auto_unbox = TRUE, digits = NA, na = "null", null = "null", pretty = FALSE)
  writeLines(txt, file.path(out_dir, paste0(name, ".json")))
  cat("wrote", name, "(", length(blocks), "blocks )\n")
}
num <- function(x) if (is.null(x)) NA_real_ else as.numeric(x)

# ------------------------------------------------------------------------------ 2x2 data sets
tables <- list(
  bcg = list(ai = dat.bcg$tpos, n1i = dat.bcg$tpos + dat.bcg$tneg,
             ci = dat.bcg$cpos, n2i = dat.bcg$cpos + dat.bcg$cneg),
  # zero cells, one double-zero table (0/12 vs 0/10), one table with all events in arm 1
  zerocells = list(ai = c(0, 3, 5, 0, 4), n1i = c(10, 20, 15, 12, 4),
                   ci = c(2, 0, 4, 0, 1), n2i = c(11, 18, 16, 10, 9)),
  k2 = list(ai = c(12, 5), n1i = c(40, 30), ci = c(6, 9), n2i = c(38, 31)),
  # rare events, balanced arms, two double-zero tables
  rare = list(ai = c(1, 0, 2, 0, 1, 0), n1i = c(100, 150, 120, 90, 200, 80),
              ci = c(0, 1, 0, 0, 2, 0), n2i = c(98, 149, 121, 92, 199, 81)),
  # a table with every patient an event in both arms (the other kind of double zero)
  allevents = list(ai = c(10, 8, 5, 3), n1i = c(10, 8, 20, 15),
                   ci = c(12, 6, 7, 2), n2i = c(12, 9, 20, 14))
)
settings <- list(
  list(txt = "", args = list()),
  list(txt = ", drop00=FALSE", args = list(drop00 = FALSE)),
  list(txt = ", drop00=c(TRUE, TRUE)", args = list(drop00 = c(TRUE, TRUE))),
  list(txt = ", add=c(1/2, 1/2), to=c(\"only0\", \"only0\")",
       args = list(add = c(1/2, 1/2), to = c("only0", "only0"))),
  list(txt = ", add=1/2, to=\"all\"", args = list(add = 1/2, to = "all")),
  list(txt = ", add=c(1/4, 1/2), to=c(\"if0all\", \"all\"), drop00=c(FALSE, TRUE)",
       args = list(add = c(1/4, 1/2), to = c("if0all", "all"), drop00 = c(FALSE, TRUE))),
  list(txt = ", correct=FALSE", args = list(correct = FALSE))
)

mh_block <- function(res) {
  list(beta = num(res$beta), se = num(res$se), zval = num(res$zval), pval = num(res$pval),
       ci_lb = num(res$ci.lb), ci_ub = num(res$ci.ub), qe = num(res$QE), qe_p = num(res$QEp),
       i2 = num(res$I2), h2 = num(res$H2), k = res$k, k_yi = res$k.yi, k_pos = num(res$k.pos),
       cmh = num(res$CO), cmh_p = num(res$COp), mh = num(res$MH), mh_p = num(res$MHp),
       bd = num(res$BD), bd_p = num(res$BDp), ta = num(res$TA), ta_p = num(res$TAp),
       yi = num(res$yi), vi = num(res$vi))
}

blocks <- list()
for (dname in names(tables)) {
  d <- tables[[dname]]
  for (fun in c("rma.mh", "rma.peto")) {
    measures <- if (fun == "rma.mh") c("OR", "RR", "RD") else "PETO"
    for (measure in measures) {
      for (s in settings) {
        if (fun == "rma.peto" && !is.null(s$args$correct)) next
        args_all <- c(list(ai = d$ai, n1i = d$n1i, ci = d$ci, n2i = d$n2i), s$args)
        if (fun == "rma.mh") args_all$measure <- measure
        call <- sprintf("%s(ai=ai, n1i=n1i, ci=ci, n2i=n2i%s%s)", fun,
                        if (fun == "rma.mh") sprintf(", measure=\"%s\"", measure) else "", s$txt)
        res <- tryCatch(suppressWarnings(do.call(fun, args_all)), error = function(e) e)
        blk <- list(data = dname, fun = fun, measure = measure, call = call,
                    ai = d$ai, n1i = d$n1i, ci = d$ci, n2i = d$n2i,
                    add = if (is.null(s$args$add)) 1/2 else s$args$add,
                    to = if (is.null(s$args$to)) "only0" else s$args$to,
                    drop00 = if (is.null(s$args$drop00)) TRUE else s$args$drop00,
                    correct = if (is.null(s$args$correct)) TRUE else s$args$correct)
        if (inherits(res, "error")) {
          blk$error <- conditionMessage(res)
        } else {
          blk$result <- mh_block(res)
        }
        blocks[[length(blocks) + 1]] <- blk
      }
    }
  }
}
write_fixture("mh_peto", blocks)

# ------------------------------------------------------------------------------ tests and PIs
yi_sets <- list(
  peds = escalc("PLO", xi = c(12, 30, 27, 19, 41, 8, 22, 15), ni = c(20, 70, 39, 33, 110, 15, 45, 40)),
  homog = escalc("PLO", xi = c(10, 11, 10, 12, 10), ni = c(50, 50, 49, 52, 51)),
  k2 = escalc("PLO", xi = c(5, 14), ni = c(20, 30)),
  k3 = escalc("PLO", xi = c(27, 58, 6), ni = c(70, 98, 13)),
  cr4 = escalc("PLO", xi = c(27, 58, 6, 18), ni = c(70, 98, 13, 25))
)
blocks <- list()
pred_block <- function(pr) {
  list(pred = num(pr$pred), se = num(pr$se), ci_lb = num(pr$ci.lb), ci_ub = num(pr$ci.ub),
       pi_lb = num(pr$pi.lb), pi_ub = num(pr$pi.ub))
}
fit_block <- function(res) {
  list(beta = num(res$beta), se = num(res$se), zval = num(res$zval), pval = num(res$pval),
       ci_lb = num(res$ci.lb), ci_ub = num(res$ci.ub), tau2 = num(res$tau2), s2w = num(res$s2w),
       qm = num(res$QM), qm_p = num(res$QMp), ddf = num(res$ddf))
}
for (dname in names(yi_sets)) {
  dat <- yi_sets[[dname]]
  for (method in c("REML", "DL", "PM", "EE")) {
    for (test in c("z", "t", "knha", "adhoc")) {
      res <- suppressWarnings(rma(yi, vi, data = dat, method = method, test = test, control = ctrl))
      preds <- list()
      for (pt in c("default", "riley", "t", "simple")) {
        preds[[pt]] <- pred_block(predict(res, pi.type = pt))
      }
      blocks[[length(blocks) + 1]] <- list(
        data = dname, yi = num(dat$yi), vi = num(dat$vi), method = method, test = test,
        call = sprintf("rma(yi, vi, method=\"%s\", test=\"%s\", control=ctrl); predict(res, pi.type=pt)", method, test),
        fit = fit_block(res), pred = preds)
    }
  }
}
# meta-regression: dat.bcg log risk ratios on ablat, predictions at new values
bcg <- escalc("RR", ai = tpos, bi = tneg, ci = cpos, di = cneg, data = dat.bcg)
for (test in c("z", "t", "knha", "adhoc")) {
  res <- rma(yi, vi, mods = ~ablat, data = bcg, method = "REML", test = test, control = ctrl)
  preds <- list()
  for (pt in c("default", "riley", "t", "simple")) {
    preds[[pt]] <- pred_block(predict(res, newmods = c(10, 30, 50), pi.type = pt))
  }
  blocks[[length(blocks) + 1]] <- list(
    data = "bcg_ablat", yi = num(bcg$yi), vi = num(bcg$vi), ablat = dat.bcg$ablat,
    method = "REML", test = test, newmods = c(10, 30, 50),
    call = sprintf("rma(yi, vi, mods=~ablat, method=\"REML\", test=\"%s\", control=ctrl); predict(res, newmods=c(10,30,50), pi.type=pt)", test),
    fit = fit_block(res), pred = preds)
}
write_fixture("tests_pi", blocks)

# ------------------------------------------------------------------------------ Peters' test
blocks <- list()
prop_sets <- list(
  peds = list(xi = c(12, 30, 27, 19, 41, 8, 22, 15), ni = c(20, 70, 39, 33, 110, 15, 45, 40)),
  k12 = list(xi = c(3, 10, 7, 25, 4, 12, 30, 9, 2, 40, 15, 6),
             ni = c(20, 45, 30, 80, 15, 50, 120, 33, 10, 150, 60, 25)),
  zeros = list(xi = c(0, 2, 5, 1, 0, 8, 3, 4, 0, 6), ni = c(12, 30, 44, 25, 18, 60, 35, 40, 9, 50))
)
for (dname in names(prop_sets)) {
  d <- prop_sets[[dname]]
  dat <- escalc("PLO", xi = d$xi, ni = d$ni)
  for (method in c("REML", "EE")) {
    res <- rma(yi, vi, data = dat, method = method, control = ctrl)
    rt <- regtest(res, model = "lm", predictor = "ninv")
    blocks[[length(blocks) + 1]] <- list(
      data = dname, kind = "proportion", xi = d$xi, ni = d$ni, yi = num(dat$yi), vi = num(dat$vi),
      method = method,
      call = sprintf("dat <- escalc(\"PLO\", xi, ni); res <- rma(yi, vi, data=dat, method=\"%s\"); regtest(res, model=\"lm\", predictor=\"ninv\")", method),
      zval = num(rt$zval), pval = num(rt$pval), dfs = num(rt$dfs), est = num(rt$est),
      ci_lb = num(rt$ci.lb), ci_ub = num(rt$ci.ub))
  }
}
dat <- escalc("OR", ai = tpos, bi = tneg, ci = cpos, di = cneg, data = dat.bcg)
res <- rma(yi, vi, data = dat, method = "REML", control = ctrl)
rt <- regtest(res, model = "lm", predictor = "ninv")
blocks[[length(blocks) + 1]] <- list(
  data = "bcg", kind = "2x2", yi = num(dat$yi), vi = num(dat$vi),
  ni = with(dat.bcg, tpos + tneg + cpos + cneg), method = "REML",
  call = "dat <- escalc(\"OR\", ai=tpos, bi=tneg, ci=cpos, di=cneg, data=dat.bcg); regtest(rma(yi, vi, data=dat), model=\"lm\", predictor=\"ninv\")",
  zval = num(rt$zval), pval = num(rt$pval), dfs = num(rt$dfs), est = num(rt$est),
  ci_lb = num(rt$ci.lb), ci_ub = num(rt$ci.ub))
write_fixture("peters", blocks)

# ------------------------------------------------------------------------------ GLMM for pool
gd <- read.csv(file.path(out_dir, "glmm_pool.csv"))
glmer_ctrl <- list(optimizer = "nloptwrap",
                   optCtrl = list(xtol_rel = 1e-12, ftol_rel = 1e-14,
                                  xtol_abs = 1e-12, ftol_abs = 1e-14, maxeval = 1e5))
blocks <- list()
for (test in c("z", "t")) {
  res <- rma.glmm(measure = "PLO", xi = events, ni = total, mods = ~x, data = gd, test = test,
                  control = list(glmerControl = glmer_ctrl))
  preds <- list()
  for (pt in c("default", "riley", "t", "simple")) {
    preds[[pt]] <- pred_block(predict(res, newmods = c(2.5, 6), pi.type = pt))
  }
  res0 <- rma.glmm(measure = "PLO", xi = events, ni = total, data = gd, test = test,
                   control = list(glmerControl = glmer_ctrl))
  preds0 <- list()
  for (pt in c("default", "riley", "t", "simple")) {
    preds0[[pt]] <- pred_block(predict(res0, pi.type = pt))
  }
  blocks[[length(blocks) + 1]] <- list(
    test = test, newmods = c(2.5, 6),
    call = sprintf("rma.glmm(measure=\"PLO\", xi=events, ni=total, mods=~x, data=gd, test=\"%s\", control=list(glmerControl=glmer_ctrl)); predict(res, newmods=c(2.5, 6), pi.type=pt)", test),
    beta = num(res$beta), se = num(res$se), tau2 = num(res$tau2), qm = num(res$QM),
    qm_p = num(res$QMp), pred = preds,
    beta0 = num(res0$beta), se0 = num(res0$se), tau2_0 = num(res0$tau2), pred0 = preds0,
    ll_metafor = num(res0$fit.stats["ll", "ML"]),
    ll_glmer = as.numeric(logLik(glmer(cbind(events, total - events) ~ 1 + (1 | study),
                                       data = gd, family = binomial, nAGQ = 7,
                                       control = do.call(glmerControl, glmer_ctrl)))))
}
write_fixture("glmm_pool", blocks)
