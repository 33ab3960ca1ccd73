"""The frequentist engine: metafor's escalc, rma.uni, rma.glmm, confint, predict, permutest,
subgroup tests and diagnostics."""
