"""Evaluation data: test corpora and evaluation sets as data files, with their generators and scorers."""
