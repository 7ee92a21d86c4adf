"""The models: transforms, entropy models, the registry of trained weights.

CompressAI's import runs torch.jit.script, which torch now answers with a FutureWarning that a user
of the codec can do nothing about; it is silenced for that import alone.
"""

import warnings

with warnings.catch_warnings():
    warnings.simplefilter("ignore", FutureWarning)
    import compressai.entropy_models  # noqa: F401
