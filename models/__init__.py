"""The models: layers, architectures and the forms coding runs them in.

Importing this package imports nothing heavy: a command that only lists models or reads a file's
header needs no torch. CompressAI's import runs torch.jit.script, which torch now answers with a
FutureWarning that a user of the codec can do nothing about; that warning is silenced here, before
any module below imports CompressAI.
"""

import warnings

warnings.filterwarnings("ignore", message=r"`torch\.jit\.script` is deprecated", category=FutureWarning)
