"""Representation similarity: activation capture and metrics (CKA, CCA family, RSA, Procrustes)."""

from graftkit.similarity.capture import Activations, LayerRecorder, capture, default_layers
from graftkit.similarity.cka import cka_from_grams, debiased_cka, gram_linear, gram_rbf, linear_cka, rbf_cka
from graftkit.similarity.texts import TextBatches

__all__ = [
    "Activations",
    "LayerRecorder",
    "TextBatches",
    "capture",
    "cka_from_grams",
    "debiased_cka",
    "default_layers",
    "gram_linear",
    "gram_rbf",
    "linear_cka",
    "rbf_cka",
]
