"""Training: quantised layers, network builders, data sets, input quantisation, export to the integer IR."""
