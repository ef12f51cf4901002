"""ML quality monitoring: hallucination-rate roll-ups, version comparisons, drift tests, alerts and reports."""
