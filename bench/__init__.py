"""``make bench``: performance scenarios against the simulators (``python -m bench.run``).

The scripts of this folder also run on their own (``python bench/<name>.py``);
:mod:`bench.run` imports their functions and puts every figure beside its floor.
"""
