"""History migration (历史迁移): clean, de-duplicate, validate, link and load past data, resumably.

The ``history_migration`` DAG (``dags/history_migration.py``) calls
:mod:`bridge.migration.tasks`; tests, the bench and one-off tools call
:mod:`bridge.migration.steps` directly. Modules, one job each:

``params``    the Params form and the checked, resolved parameters of a run
``runs``      ``migration_run`` / ``migration_chunk`` bookkeeping and the ``history_migration`` lease
``plan``      chunks of about ``chunk_size`` records (CRM: search totals; OA: instances per hour)
``dedupe``    customer de-duplication (exact keys, then normalised name + credit code), ``merge_record``
``clean``     what cleaning changed (the cleaning is the dictionary's)
``gate``      the validation gate: the data-health dictionary suite (Great Expectations)
``chunk``     one chunk: extract → clean → validate → merge → link → load → archive
``writeback`` deals ← their 立项申请 (instance code, project number, status) in the CRM
``report``    the HTML and CSV report of a run
``workdir``   the run's folder (report, small work files shared by its tasks)
``steps``     the run's steps without Airflow; ``tasks`` the DAG's task bodies

Importing this package imports nothing else (the DAG file reads ``params`` at parse time).
"""

from __future__ import annotations
