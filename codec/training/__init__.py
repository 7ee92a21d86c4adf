"""The parts of a training run, one job each; codec/train.py drives them (see its docstring)."""
