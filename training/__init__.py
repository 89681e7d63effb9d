"""Training layer: fine-tuning under differential privacy with PEFT and Opacus, tracked in MLflow.

Importing this package is light; torch and friends are imported by the functions that train.
"""
