"""Scores and their plots, shared by training and evaluation: WAR, UAR, F1, CCC, AU F1 (``metrics``, pure numpy)
and the confusion matrix, per-class table and training curves (``plots``)."""
