"""Offline training of the CLIP-adapter models: dataset readers, preprocessing, clip sampling,
augmentation, losses and the trainer. Imports torch only in the modules that need it."""
