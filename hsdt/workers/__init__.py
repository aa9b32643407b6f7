"""Work distribution: the Celery app and its thin, idempotent tasks.

Public face (import from the submodules; importing this package opens nothing):

- :mod:`hsdt.workers.app` — ``app`` (configured from ``HSDT_…`` variables, see
  :mod:`hsdt.workers.settings`) and ``create_app(settings)``;
- :mod:`hsdt.workers.tasks` — the tasks and what makes each idempotent;
- :mod:`hsdt.workers.pipeline` — ``process_class(bundle, out_dir, archive_root, pki_dir)``
  and ``ClassJob.wait()``; ``send_record`` for one record's chain;
- :mod:`hsdt.workers.commit` — ``enqueue_after_commit(signature, session)``;
- :mod:`hsdt.workers.cli` — ``run_worker(argv)`` behind ``hsdt worker``.
"""
