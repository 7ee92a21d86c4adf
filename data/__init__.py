"""Files the codec reads at run time (CompressAI's published Kodak curves) and the sample image."""
