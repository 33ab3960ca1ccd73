# Golden values for blinameta's frequentist core, computed with R's metafor.
#
# Run by hand from the repository root:   Rscript tests/r/frequentist_fixtures.R
# Writes tests/fixtures/frequentist/*.json. Every block records the exact R call that made it;
# every file records the R and metafor versions. The tests read these files and never need R.
#
# The tau^2 iterations and root finders are run with a tight tolerance (ctrl below) so that the
# numbers are the limits of the algorithms, which blinameta reproduces to 1e-6 relative.

suppressPackageStartupMessages(library(metafor))
library(jsonlite)

out_dir <- file.path("tests", "fixtures", "frequentist")
dir.create(out_dir, recursive = TRUE, showWarnings = FALSE)

ctrl <- list(threshold = 1e-12, tol = 1e-12, maxiter = 10000)
ctrl_txt <- "control=list(threshold=1e-12, tol=1e-12, maxiter=10000)"
ci_ctrl <- list(tol = 1e-12)

meta <- list(
  r_version = R.version.string,
  metafor_version = as.character(packageVersion("metafor")),
  generated_by = "tests/r/frequentist_fixtures.R",
  date = format(Sys.Date())
)

write_fixture <- function(name, blocks) {
  obj <- c(meta, list(blocks = blocks))
  txt <- toJSON(obj, auto_unbox = TRUE, digits = NA, na = "null", null = "null", pretty = FALSE)
  writeLines(txt, file.path(out_dir, paste0(name, ".json")))
  cat("wrote", name, "(", length(blocks), "blocks )\n")
}

num <- function(x) if (is.null(x)) NA_real_ else as.numeric(x)

# ---------------------------------------------------------------------------------------------
# data sets
# ---------------------------------------------------------------------------------------------

prop_data <- list(
  # real-like: pediatric complete-remission counts
  peds = list(xi = c(12, 30, 27, 19, 41, 8, 22, 15), ni = c(20, 70, 39, 33, 110, 15, 45, 40),
              group = c("A", "B", "A", "C", "B", "C", "A", "B"),
              dose = c(5, 15, 9, 28, 15, 5, 9, 28)),
  k2 = list(xi = c(5, 14), ni = c(20, 30)),
  zeros = list(xi = c(0, 10, 3, 7, 0, 15), ni = c(12, 10, 25, 18, 30, 15)),
  homog = list(xi = c(10, 11, 10, 12, 10), ni = c(50, 50, 49, 52, 51)),
  large = list(xi = c(1200, 3500, 800, 5100, 2400), ni = c(10000, 25000, 9000, 40000, 15000))
)
measures <- c("PR", "PLN", "PLO", "PAS", "PFT")
methods <- c("EE", "DL", "HE", "HS", "SJ", "ML", "REML", "EB", "PM")
tests <- c("z", "knha")

transf_for <- function(measure, ni) {
  switch(measure,
         PR = list(f = function(x) x, call = "none"),
         PLN = list(f = exp, call = "exp"),
         PLO = list(f = transf.ilogit, call = "transf.ilogit"),
         PAS = list(f = transf.iarcsin, call = "transf.iarcsin"),
         PFT = list(f = function(x) transf.ipft.hm(x, targs = list(ni = ni)),
                    call = "transf.ipft.hm, targs=list(ni=ni)"))
}

fit_block <- function(res) {
  b <- list(
    beta = as.numeric(res$beta), se = as.numeric(res$se), zval = as.numeric(res$zval),
    pval = as.numeric(res$pval), ci_lb = as.numeric(res$ci.lb), ci_ub = as.numeric(res$ci.ub),
    tau2 = num(res$tau2), se_tau2 = num(res$se.tau2), qe = num(res$QE), qe_p = num(res$QEp),
    i2 = num(res$I2), h2 = num(res$H2), vt = num(res$vt), qm = num(res$QM), qm_p = num(res$QMp),
    r2 = num(res$R2), s2w = num(res$s2w),
    ll_ml = num(res$fit.stats["ll", "ML"]), ll_reml = num(res$fit.stats["ll", "REML"]),
    aic_reml = num(res$fit.stats["AIC", "REML"]), coef_names = rownames(res$beta)
  )
  b
}

confint_block <- function(res) {
  ci <- try(confint(res, control = ci_ctrl), silent = TRUE)
  if (inherits(ci, "try-error")) return(list(error = as.character(ci)))
  r <- ci$random
  list(tau2 = as.numeric(r["tau^2", ]), i2 = as.numeric(r["I^2(%)", ]),
       h2 = as.numeric(r["H^2", ]), ci_null = ci$ci.null, lb_sign = ci$lb.sign,
       ub_sign = ci$ub.sign)
}

pred_block <- function(pr) {
  list(pred = as.numeric(pr$pred), se = as.numeric(pr$se), ci_lb = as.numeric(pr$ci.lb),
       ci_ub = as.numeric(pr$ci.ub), pi_lb = as.numeric(pr$pi.lb), pi_ub = as.numeric(pr$pi.ub))
}

# ---------------------------------------------------------------------------------------------
# 1. escalc: proportions, 2x2 tables, hazard ratios; back-transformations; study CIs
# ---------------------------------------------------------------------------------------------

esc <- list()
for (dname in names(prop_data)) {
  d <- prop_data[[dname]]
  for (measure in measures) {
    for (to in c("only0", "all", "if0all", "none")) {
      for (add in list(NULL, 0.5, 0.25)) {
        if (is.null(add)) {
          e <- escalc(measure, xi = d$xi, ni = d$ni, to = to)
          call <- sprintf('escalc("%s", xi=xi, ni=ni, to="%s")', measure, to)
        } else {
          e <- escalc(measure, xi = d$xi, ni = d$ni, add = add, to = to)
          call <- sprintf('escalc("%s", xi=xi, ni=ni, add=%s, to="%s")', measure, add, to)
        }
        esc[[length(esc) + 1]] <- list(kind = "proportion", data = dname, measure = measure,
          to = to, add = if (is.null(add)) NA else add, xi = d$xi, ni = d$ni, call = call,
          yi = as.numeric(e$yi), vi = as.numeric(e$vi))
      }
    }
  }
}
tab <- list(
  bcg = list(ai = dat.bcg$tpos, n1i = dat.bcg$tpos + dat.bcg$tneg,
             ci = dat.bcg$cpos, n2i = dat.bcg$cpos + dat.bcg$cneg),
  zerocells = list(ai = c(0, 3, 5, 0, 4), n1i = c(10, 20, 15, 12, 4),
                   ci = c(2, 0, 4, 0, 1), n2i = c(11, 18, 16, 10, 9))
)
for (dname in names(tab)) {
  d <- tab[[dname]]
  for (measure in c("RR", "OR", "RD")) {
    for (to in c("only0", "all", "if0all", "none")) {
      e <- suppressWarnings(escalc(measure, ai = d$ai, n1i = d$n1i, ci = d$ci, n2i = d$n2i, to = to))
      esc[[length(esc) + 1]] <- list(kind = "2x2", data = dname, measure = measure, to = to,
        add = 0.5, ai = d$ai, n1i = d$n1i, ci = d$ci, n2i = d$n2i,
        call = sprintf('escalc("%s", ai=ai, n1i=n1i, ci=ci, n2i=n2i, to="%s")', measure, to),
        yi = as.numeric(e$yi), vi = as.numeric(e$vi))
    }
  }
}
hr <- c(0.7, 1.2, 0.45, 0.62); hr_lb <- c(0.5, 0.8, 0.3, 0.41); hr_ub <- c(0.98, 1.8, 0.675, 0.94)
sei <- (log(hr_ub) - log(hr_lb)) / (2 * qnorm(0.975))
res_hr <- rma(yi = log(hr), sei = sei, method = "REML", control = ctrl)
esc[[length(esc) + 1]] <- list(kind = "hr", hr = hr, ci_lb = hr_lb, ci_ub = hr_ub,
  call = "yi=log(hr); sei=(log(ub)-log(lb))/(2*qnorm(0.975)); rma(yi, sei=sei, method='REML', ctrl)",
  yi = log(hr), vi = sei^2, fit = fit_block(res_hr),
  pred_hr = pred_block(predict(res_hr, transf = exp)))
# back-transformations
yt <- seq(-0.2, 1.8, by = 0.1)
ni_bt <- c(20, 70, 39, 33, 110, 15, 45, 40)
esc[[length(esc) + 1]] <- list(kind = "transf", y = yt, ni = ni_bt,
  call = "transf.ipft.hm(y, targs=list(ni=ni)); transf.ipft(y, 25); transf.iarcsin(y); transf.ilogit(y)",
  ipft_hm = transf.ipft.hm(yt, targs = list(ni = ni_bt)), ipft_25 = transf.ipft(yt, 25),
  iarcsin = transf.iarcsin(yt), ilogit = transf.ilogit(yt))
# study-level CIs
xs <- c(0, 1, 12, 30, 27, 19, 41, 15, 40); ns <- c(12, 10, 20, 70, 39, 33, 110, 15, 40)
cp <- t(sapply(seq_along(xs), function(i) binom.test(xs[i], ns[i])$conf.int))
wi <- t(sapply(seq_along(xs), function(i) suppressWarnings(prop.test(xs[i], ns[i], correct = FALSE)$conf.int)))
esc[[length(esc) + 1]] <- list(kind = "study_ci", xi = xs, ni = ns,
  call = "binom.test(x, n)$conf.int; prop.test(x, n, correct=FALSE)$conf.int",
  cp_lb = cp[, 1], cp_ub = cp[, 2], wilson_lb = wi[, 1], wilson_ub = wi[, 2])
write_fixture("escalc", esc)

# ---------------------------------------------------------------------------------------------
# 2. rma: every estimator x measure x test on the proportion data sets; dat.bcg log RR
# ---------------------------------------------------------------------------------------------

fits <- list()
for (dname in names(prop_data)) {
  d <- prop_data[[dname]]
  for (measure in measures) {
    e <- escalc(measure, xi = d$xi, ni = d$ni)
    tr <- transf_for(measure, d$ni)
    for (method in methods) {
      for (test in tests) {
        call <- sprintf('rma(yi, vi, method="%s", test="%s", %s) on escalc("%s", xi=xi, ni=ni)',
                        method, test, ctrl_txt, measure)
        res <- try(suppressWarnings(rma(e$yi, e$vi, method = method, test = test, control = ctrl)),
                   silent = TRUE)
        blk <- list(data = dname, measure = measure, method = method, test = test, call = call,
                    xi = d$xi, ni = d$ni, yi = as.numeric(e$yi), vi = as.numeric(e$vi))
        if (inherits(res, "try-error")) {
          blk$error <- as.character(res)
        } else {
          blk$fit <- fit_block(res)
          blk$predict <- pred_block(predict(res))
          blk$predict_transf <- pred_block(predict(res, transf = tr$f))
          blk$predict_transf_call <- paste0("predict(res, transf=", tr$call, ")")
          if (method != "EE") blk$confint <- confint_block(res)
        }
        fits[[length(fits) + 1]] <- blk
      }
    }
  }
}

bcg <- escalc("RR", ai = tpos, bi = tneg, ci = cpos, di = cneg, data = dat.bcg)
bcg_mods <- list(
  none = list(formula = NULL, newmods = NULL),
  ablat = list(formula = ~ ablat, newmods = c(10, 30, 50),
               newmods_df = list(ablat = c(10, 30, 50))),
  alloc = list(formula = ~ alloc, newmods = rbind(c(0, 0), c(1, 0), c(0, 1)),
               newmods_df = list(alloc = c("alternate", "random", "systematic"))),
  alloc_ablat = list(formula = ~ alloc + ablat, newmods = rbind(c(0, 0, 20), c(1, 0, 40)),
                     newmods_df = list(alloc = c("alternate", "random"), ablat = c(20, 40)))
)
for (mname in names(bcg_mods)) {
  spec <- bcg_mods[[mname]]
  for (method in methods) {
    for (test in tests) {
      if (is.null(spec$formula)) {
        res <- rma(yi, vi, data = bcg, method = method, test = test, control = ctrl)
        call <- sprintf('rma(yi, vi, data=escalc("RR", ai=tpos, bi=tneg, ci=cpos, di=cneg, data=dat.bcg), method="%s", test="%s", %s)', method, test, ctrl_txt)
      } else {
        res <- rma(yi, vi, mods = spec$formula, data = bcg, method = method, test = test, control = ctrl)
        call <- sprintf('rma(yi, vi, mods=%s, data=escalc("RR", ..., data=dat.bcg), method="%s", test="%s", %s)',
                        deparse(spec$formula), method, test, ctrl_txt)
      }
      blk <- list(data = "bcg", mods = mname, method = method, test = test, call = call,
                  yi = as.numeric(bcg$yi), vi = as.numeric(bcg$vi), ablat = dat.bcg$ablat,
                  alloc = as.character(dat.bcg$alloc), fit = fit_block(res))
      if (method != "EE") blk$confint <- confint_block(res)
      if (!is.null(spec$newmods)) {
        blk$newmods_df <- spec$newmods_df
        blk$predict_new <- pred_block(predict(res, newmods = spec$newmods))
        blk$predict_new_call <- "predict(res, newmods=newmods)"
      } else {
        blk$predict <- pred_block(predict(res))
        blk$predict_transf <- pred_block(predict(res, transf = exp))
      }
      fits[[length(fits) + 1]] <- blk
    }
  }
}
write_fixture("rma", fits)

# ---------------------------------------------------------------------------------------------
# 3. permutation tests (exact: metafor enumerates all permutations)
# ---------------------------------------------------------------------------------------------

perms <- list()
pe <- escalc("PLO", xi = prop_data$peds$xi, ni = prop_data$peds$ni)
pe$group <- prop_data$peds$group
pe$dose <- prop_data$peds$dose
perm_specs <- list(
  list(name = "intercept_only", sub = 1:8, formula = NULL),
  list(name = "group_factor", sub = 1:8, formula = ~ group),
  list(name = "dose_k7", sub = 1:7, formula = ~ dose)
)
for (spec in perm_specs) {
  for (method in c("REML", "DL", "PM")) {
    for (test in tests) {
      if (spec$name == "dose_k7" && method == "PM" && test == "knha") next
      d <- pe[spec$sub, ]
      if (is.null(spec$formula)) {
        res <- rma(yi, vi, data = d, method = method, test = test, control = ctrl)
      } else {
        res <- rma(yi, vi, mods = spec$formula, data = d, method = method, test = test, control = ctrl)
      }
      pt <- permutest(res, exact = TRUE, progbar = FALSE)
      perms[[length(perms) + 1]] <- list(
        name = spec$name, method = method, test = test,
        call = sprintf('permutest(rma(yi, vi, mods=%s, data=escalc("PLO", xi, ni)[%s, ], method="%s", test="%s", %s), exact=TRUE)',
                       if (is.null(spec$formula)) "NULL" else deparse(spec$formula),
                       deparse(spec$sub), method, test, ctrl_txt),
        yi = as.numeric(d$yi), vi = as.numeric(d$vi), group = d$group, dose = d$dose,
        pval = as.numeric(pt$pval), qm_p = as.numeric(pt$QMp), exact_iter = as.numeric(pt$exact.iter),
        fit = fit_block(res))
    }
  }
}
write_fixture("permutest", perms)

# ---------------------------------------------------------------------------------------------
# 4. subgroup analyses (common tau2: meta-regression on the group factor; separate tau2:
#    per-group rma, then rma(method="FE") on the subgroup estimates)
# ---------------------------------------------------------------------------------------------

subs <- list()
for (measure in c("PLO", "PFT")) {
  e <- escalc(measure, xi = prop_data$peds$xi, ni = prop_data$peds$ni)
  g <- prop_data$peds$group
  for (method in c("REML", "DL", "PM")) {
    for (test in tests) {
      common <- rma(e$yi, e$vi, mods = ~ factor(g), method = method, test = test, control = ctrl)
      lev <- sort(unique(g))
      per <- lapply(lev, function(l) rma(e$yi[g == l], e$vi[g == l], method = method, test = test, control = ctrl))
      est <- sapply(per, function(r) as.numeric(r$beta))
      se <- sapply(per, function(r) r$se)
      between <- rma(est, sei = se, method = "FE")
      subs[[length(subs) + 1]] <- list(
        measure = measure, method = method, test = test, yi = as.numeric(e$yi),
        vi = as.numeric(e$vi), group = g, groups = lev,
        call_common = sprintf('rma(yi, vi, mods=~factor(g), method="%s", test="%s", %s)', method, test, ctrl_txt),
        call_separate = sprintf('per group: rma(yi, vi, method="%s", test="%s", %s); then rma(est, sei=se, method="FE")$QE', method, test, ctrl_txt),
        common_qm = common$QM, common_qm_p = common$QMp, common_qm_df = as.numeric(common$QMdf),
        common_tau2 = common$tau2,
        separate_est = est, separate_se = se,
        separate_tau2 = sapply(per, function(r) r$tau2),
        separate_ci_lb = sapply(per, function(r) r$ci.lb), separate_ci_ub = sapply(per, function(r) r$ci.ub),
        qb = between$QE, qb_p = between$QEp)
    }
  }
}
write_fixture("subgroup", subs)
