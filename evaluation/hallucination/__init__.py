"""The hallucination evaluation set: fact templates and answer categories as data files (``data/``),
the generator of labelled items (``evalset``) and the detector scorer (``score``)."""
