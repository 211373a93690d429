# The blocked difference in means of `cargo bench --bench ri` through R coin's stratified
# permutation test (approximate distribution, the same number of resamples):
#   Rscript --vanilla benches/ri_reference_timing.R 20000 10000
# Prints "coin dim <seconds>". Needs Debian's r-cran-coin.
args <- commandArgs(trailingOnly = TRUE)
n <- as.integer(args[1]); draws <- as.integer(args[2]); size <- 8L
n <- n - n %% size
suppressPackageStartupMessages(library(coin))
set.seed(2026)
s <- n %/% size
b <- 6 * rexp(n)
y <- 0.6 * b + 3 * rexp(n)
z <- factor(rep(c(1, 0), n / 2), levels = c(0, 1))
stratum <- factor(rep(seq_len(s), each = size))
t <- system.time(independence_test(y ~ z | stratum, teststat = "scalar",
                                   distribution = approximate(nresample = draws)))
cat(sprintf("coin dim %.4f\n", t[["elapsed"]]))
