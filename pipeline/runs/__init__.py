"""Run rows: the row models and their Arrow schemas, the reason codes, the run writer.

The bottom of the house: what a crawl writes (`data/runs/<run_id>/`) and the vocabulary every
later stage uses to say why a row is not there. The row models (`schema`) import nothing of the
project, so anyone can read a run with them alone.

May import: nothing (only this package).
"""
