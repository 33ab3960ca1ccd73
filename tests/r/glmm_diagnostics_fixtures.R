# Golden values for blinameta.frequentist.glmm and blinameta.frequentist.diagnostics, computed with metafor and lme4.
#
# Run by hand from the repository root:
#     Rscript tests/r/glmm_diagnostics_fixtures.R
# It (re)writes tests/fixtures/glmm/*.json and tests/fixtures/diagnostics/*.json. Every file
# records the R, metafor and lme4 versions and, per block, the R call that produced it.
#
# Optimiser settings (why): glmer's default (bobyqa then Nelder-Mead, default tolerances) stops
# about 1e-5 (relative) away from the optimum of its own deviance. With nloptwrap (BOBYQA from
# NLopt) and the tolerances below, glmer reaches the optimum to ~1e-9, so the comparison at 1e-4
# tests the method, not the stopping rule. The standard errors are still from lme4's
# finite-difference Hessian (what metafor reports). rma() runs with threshold = 1e-12.

suppressPackageStartupMessages({
  library(metafor)
  library(lme4)
  library(jsonlite)
})

args <- commandArgs(trailingOnly = FALSE)
here <- dirname(normalizePath(sub("^--file=", "", args[grep("^--file=", args)])))
root <- normalizePath(file.path(here, "..", ".."))
dir_glmm <- file.path(root, "tests", "fixtures", "glmm")
dir_diag <- file.path(root, "tests", "fixtures", "diagnostics")
dir.create(dir_glmm, showWarnings = FALSE, recursive = TRUE)
dir.create(dir_diag, showWarnings = FALSE, recursive = TRUE)

versions <- list(
  R = R.version.string,
  metafor = as.character(packageVersion("metafor")),
  lme4 = as.character(packageVersion("lme4"))
)

glmer_ctrl <- list(optimizer = "nloptwrap",
                   optCtrl = list(xtol_rel = 1e-12, ftol_rel = 1e-14,
                                  xtol_abs = 1e-12, ftol_abs = 1e-14, maxeval = 1e5))
reml_ctrl <- list(threshold = 1e-12, maxiter = 1000)

write_fixture <- function(obj, dir, name) {
  obj$versions <- versions
  writeLines(toJSON(obj, digits = NA, auto_unbox = TRUE, null = "null", na = "null",
                    pretty = TRUE),
             file.path(dir, paste0(name, ".json")))
}

num <- function(x) unname(as.numeric(x))

# --------------------------------------------------------------------------- GLMM blocks

glmm_block <- function(name, data, call_text, newmods = NULL, newmods_py = NULL) {
  res <- eval(parse(text = call_text), envir = list2env(data))
  fit <- res$res.ML
  pred_call <- if (is.null(newmods)) "predict(res)" else paste0("predict(res, newmods = ", newmods, ")")
  pr <- eval(parse(text = pred_call))
  # the same predictions back-transformed to proportions (what `blinameta pool` reports)
  pred_transf_call <- sub("\\)$", ", transf = transf.ilogit)", pred_call)
  prt <- eval(parse(text = pred_transf_call))
  out <- list(
    name = name,
    call = call_text,
    data = data,
    glmer_control = glmer_ctrl,
    k = res$k, p = res$p,
    coef_names = rownames(res$beta),
    beta = num(res$beta), se = num(res$se), zval = num(res$zval), pval = num(res$pval),
    ci_lb = num(res$ci.lb), ci_ub = num(res$ci.ub), vb = unname(res$vb),
    tau2 = res$tau2, I2 = res$I2, H2 = res$H2, vt = res$vt,
    QE_Wld = res$QE.Wld, QEp_Wld = res$QEp.Wld, QE_LRT = res$QE.LRT, QEp_LRT = res$QEp.LRT,
    QE_df = res$QE.df, QM = res$QM, QMp = res$QMp, QMdf = num(res$QMdf),
    lme4_minus2loglik = -2 * as.numeric(logLik(fit)),
    lme4_theta = num(getME(fit, "theta")),
    metafor_ll = res$fit.stats["ll", "ML"],
    predict_call = pred_call,
    newmods = newmods_py,
    pred = num(pr$pred), pred_se = num(pr$se), pred_ci_lb = num(pr$ci.lb),
    pred_ci_ub = num(pr$ci.ub), pred_pi_lb = num(pr$pi.lb), pred_pi_ub = num(pr$pi.ub),
    predict_transf_call = pred_transf_call,
    pred_prop = num(prt$pred), pred_prop_ci_lb = num(prt$ci.lb), pred_prop_ci_ub = num(prt$ci.ub),
    pred_prop_pi_lb = num(prt$pi.lb), pred_prop_pi_ub = num(prt$pi.ub)
  )
  write_fixture(out, dir_glmm, name)
}

ctl_text <- paste0("control = list(glmerCtrl = list(optimizer = 'nloptwrap', optCtrl = list(",
                   "xtol_rel = 1e-12, ftol_rel = 1e-14, xtol_abs = 1e-12, ftol_abs = 1e-14, ",
                   "maxeval = 1e5))), retfit = TRUE")

ped <- list(xi = c(12, 30, 27, 19, 41, 9, 25), ni = c(20, 70, 39, 33, 110, 14, 38))
glmm_block("pediatric", ped,
           paste0("rma.glmm(measure = 'PLO', xi = xi, ni = ni, ", ctl_text, ")"))
glmm_block("pediatric_laplace", ped,
           paste0("rma.glmm(measure = 'PLO', xi = xi, ni = ni, nAGQ = 1, ", ctl_text, ")"))
glmm_block("pediatric_t", ped,
           paste0("rma.glmm(measure = 'PLO', xi = xi, ni = ni, test = 't', level = 90, ", ctl_text, ")"))

zeros <- list(xi = c(12, 30, 27, 19, 41, 9, 25, 0, 18, 0),
              ni = c(20, 70, 39, 33, 110, 14, 38, 15, 18, 9))
glmm_block("zero_and_all_events", zeros,
           paste0("rma.glmm(measure = 'PLO', xi = xi, ni = ni, ", ctl_text, ")"))

k2 <- list(xi = c(12, 30), ni = c(20, 70))
glmm_block("k2", k2, paste0("rma.glmm(measure = 'PLO', xi = xi, ni = ni, ", ctl_text, ")"))

homog <- list(xi = c(10, 21, 15, 29, 12, 40), ni = c(50, 100, 75, 150, 60, 200))
glmm_block("homogeneous", homog,
           paste0("rma.glmm(measure = 'PLO', xi = xi, ni = ni, ", ctl_text, ")"))

modsdat <- list(
  xi = c(12, 30, 27, 19, 41, 9, 25, 14, 33, 8, 22, 5),
  ni = c(20, 70, 39, 33, 110, 14, 38, 30, 60, 25, 41, 16),
  age = c(8.5, 10.2, 6.1, 12.0, 9.4, 5.5, 7.8, 11.1, 9.9, 13.2, 8.0, 12.5),
  design = c("single", "multi", "single", "multi", "multi", "single",
             "phase2", "phase2", "multi", "phase2", "single", "phase2")
)
glmm_block("moderators", modsdat,
           paste0("rma.glmm(measure = 'PLO', xi = xi, ni = ni, mods = ~ age + factor(design), ",
                  ctl_text, ")"),
           newmods = "rbind(c(9, 0, 0), c(12, 0, 1))",
           newmods_py = list(list(9, 0, 0), list(12, 0, 1)))
glmm_block("moderator_continuous", modsdat,
           paste0("rma.glmm(measure = 'PLO', xi = xi, ni = ni, mods = ~ age, ", ctl_text, ")"),
           newmods = "c(6, 10)", newmods_py = list(list(6), list(10)))

# --------------------------------------------------------------------------- diagnostics

diag_block <- function(name, yi, vi, fit_call, extra = list(), order = NULL, mods = NULL) {
  env <- list2env(list(yi = yi, vi = vi, mods = mods, reml_ctrl = reml_ctrl))
  res <- eval(parse(text = fit_call), envir = env)
  inf <- influence(res)
  out <- list(name = name, call = fit_call, yi = num(yi), vi = num(vi), mods = mods,
              method = res$method, test = res$test,
              beta = num(res$beta), se = num(res$se), tau2 = res$tau2, QE = res$QE)
  out$influence <- list(
    call = "influence(res)",
    rstudent = num(inf$inf$rstudent), dffits = num(inf$inf$dffits),
    cook_d = num(inf$inf$cook.d), cov_r = num(inf$inf$cov.r),
    tau2_del = num(inf$inf$tau2.del), QE_del = num(inf$inf$QE.del),
    hat = num(inf$inf$hat), weight = num(inf$inf$weight),
    dfbs = lapply(unclass(inf$dfbs)[seq_len(res$p)], num),
    is_infl = as.logical(inf$is.infl)
  )
  rs <- rstudent(res)
  out$rstudent <- list(call = "rstudent(res)", resid = num(rs$resid), se = num(rs$se), z = num(rs$z))
  bj <- baujat(res)
  out$baujat <- list(call = "baujat(res)", x = num(bj$x), y = num(bj$y))
  rt <- regtest(res)
  out$regtest <- list(call = "regtest(res)", zval = num(rt$zval), pval = num(rt$pval),
                      dfs = if (is.na(rt$ddf)) NULL else num(rt$ddf),
                      est = if (is.null(rt$est)) NULL else num(rt$est),
                      ci_lb = if (is.null(rt$ci.lb)) NULL else num(rt$ci.lb),
                      ci_ub = if (is.null(rt$ci.ub)) NULL else num(rt$ci.ub))
  if (res$int.only) {
    l1 <- leave1out(res)
    out$leave1out <- list(call = "leave1out(res)", estimate = num(l1$estimate), se = num(l1$se),
                          zval = num(l1[[3]]), pval = num(l1$pval), ci_lb = num(l1$ci.lb),
                          ci_ub = num(l1$ci.ub), Q = num(l1$Q), Qp = num(l1$Qp),
                          tau2 = if (is.null(l1$tau2)) NULL else num(l1$tau2),
                          I2 = num(l1$I2), H2 = num(l1$H2))
    cu <- if (is.null(order)) cumul(res) else cumul(res, order = order)
    out$cumul <- list(call = if (is.null(order)) "cumul(res)" else "cumul(res, order = order)",
                      order = order,
                      estimate = num(cu$estimate), se = num(cu$se), zval = num(cu[[3]]),
                      pval = num(cu$pval), ci_lb = num(cu$ci.lb), ci_ub = num(cu$ci.ub),
                      Q = num(cu$Q), Qp = num(cu$Qp),
                      tau2 = if (is.null(cu$tau2)) NULL else num(cu$tau2),
                      I2 = num(cu$I2), H2 = num(cu$H2))
    rk <- ranktest(res)
    out$ranktest <- list(call = "ranktest(res)", tau = num(rk$tau), pval = num(rk$pval))
    for (est in c("L0", "R0")) {
      for (side in c("auto", "left", "right")) {
        tf_call <- if (side == "auto") {
          sprintf("trimfill(res, estimator = '%s', control = reml_ctrl)", est)
        } else {
          sprintf("trimfill(res, side = '%s', estimator = '%s', control = reml_ctrl)", side, est)
        }
        tf <- eval(parse(text = tf_call))
        out[[paste0("trimfill_", est, "_", side)]] <- list(
          call = tf_call, k0 = tf$k0, se_k0 = tf$se.k0, side = tf$side,
          p_k0 = if (is.na(tf$p.k0)) NULL else tf$p.k0,
          yi = num(tf$yi), vi = num(tf$vi), fill = as.logical(tf$fill),
          beta = num(tf$beta), se = num(tf$se), zval = num(tf$zval), pval = num(tf$pval),
          ci_lb = num(tf$ci.lb), ci_ub = num(tf$ci.ub), tau2 = tf$tau2, QE = tf$QE,
          QEp = tf$QEp, I2 = tf$I2
        )
      }
    }
  }
  out <- c(out, extra)
  write_fixture(out, dir_diag, name)
}

data(dat.bcg, package = "metadat")
bcg <- escalc(measure = "RR", ai = tpos, bi = tneg, ci = cpos, di = cneg, data = dat.bcg)
diag_block("bcg_reml", bcg$yi, bcg$vi,
           "rma(yi, vi, method = 'REML', control = reml_ctrl)", order = dat.bcg$year)
diag_block("bcg_dl", bcg$yi, bcg$vi, "rma(yi, vi, method = 'DL')", order = dat.bcg$year)
diag_block("bcg_ee", bcg$yi, bcg$vi, "rma(yi, vi, method = 'EE')")
diag_block("bcg_reml_knha", bcg$yi, bcg$vi,
           "rma(yi, vi, method = 'REML', test = 'knha', control = reml_ctrl)")
diag_block("bcg_reml_mods", bcg$yi, bcg$vi,
           "rma(yi, vi, mods = mods, method = 'REML', control = reml_ctrl)",
           mods = dat.bcg$ablat)
diag_block("bcg_reml_mods2", bcg$yi, bcg$vi,
           "rma(yi, vi, mods = mods, method = 'REML', control = reml_ctrl)",
           mods = cbind(dat.bcg$ablat, dat.bcg$year))

pl <- escalc(measure = "PLO", xi = ped$xi, ni = ped$ni)
diag_block("pediatric_plo_reml", pl$yi, pl$vi,
           "rma(yi, vi, method = 'REML', control = reml_ctrl)")

# An asymmetric funnel (small studies with large effects) so that trim-and-fill imputes.
asym_y <- c(0.05, 0.10, 0.02, 0.30, 0.45, 0.60, 0.80, 0.15, 0.70, 0.95, 0.25, 0.08)
asym_v <- c(0.010, 0.015, 0.012, 0.040, 0.060, 0.090, 0.120, 0.020, 0.100, 0.150, 0.030, 0.011)
diag_block("asymmetric_reml", asym_y, asym_v,
           "rma(yi, vi, method = 'REML', control = reml_ctrl)")
diag_block("asymmetric_ee", asym_y, asym_v, "rma(yi, vi, method = 'EE')")

# Exact Kendall p-values for small k (no ties).
set.seed(20261121)
rk <- lapply(c(3, 5, 8, 12), function(k) {
  yi <- round(rnorm(k), 4); vi <- round(runif(k, 0.01, 0.2), 4)
  r <- ranktest(yi, vi)
  list(yi = yi, vi = vi, tau = num(r$tau), pval = num(r$pval))
})
write_fixture(list(name = "ranktest_small", call = "ranktest(yi, vi)", cases = rk),
              dir_diag, "ranktest_small")

cat("fixtures written to", dir_glmm, "and", dir_diag, "\n")
