"""The Attention U-Net and its training losses (Keras layers only)."""
