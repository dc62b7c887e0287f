"""The 08:00 consolidated management report (经营日报, DAG ``daily_report``).

Kept light on purpose: the DAG file imports :mod:`bridge.report.timetable` at
parse time, so nothing here imports pandas, matplotlib or the hub. The parts:

* ``timetable``  when the report runs (explicit time zone, business days)
* ``periods``    which dates each figure covers (day, month to date, year to date)
* ``load``       hub snapshots → compact pandas frames, permission policy applied
* ``marts``      pure pandas: the tables of the report
* ``charts``     matplotlib (Agg) with a CJK font
* ``render``     HTML (Jinja, inline CSS, inline images) and XLSX (openpyxl)
* ``delivery``   the mail (HTML body, inline charts, XLSX attached) via ``smtp_default``
* ``archive``    files under ``<BRIDGE_DATA_DIR>/reports/<day>/`` and the ``report_run`` table
* ``build``      one function that does it all for a day; ``tasks`` is the DAG's glue
"""

from __future__ import annotations
