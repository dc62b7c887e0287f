"""Feishu (Lark) approval v4 simulator acting as the company's OA.

``python -m sandbox.oa --host 127.0.0.1 --port P --db PATH [--seed N]`` starts it;
``docs/sim_oa.md`` documents the endpoints, the admin API and fault injection.
"""
