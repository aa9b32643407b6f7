"""The service's domain operations on the database: who acts, on what, by which rule.

The web layer (:mod:`hsdt.api`) and the Celery tasks call these functions and nothing else
changes a record's state, so each rule of the workflow lives in one place.
"""
