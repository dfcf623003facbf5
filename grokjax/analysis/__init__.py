"""Numpy only: censored cell statistics and W_c (`stats`), the delay-law and power-law fits
with their seed bootstraps (`fit`), one sample against another (`compare`)."""
