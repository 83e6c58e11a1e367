"""Representation similarity: activation capture, metrics (CKA family, CCA family, RSA, Procrustes,
weight correlation) and layer-by-layer similarity matrices between any two models."""

from graftkit.similarity.capture import Activations, LayerRecorder, capture, default_layers
from graftkit.similarity.cca import cca_r2, pwcca, svcca
from graftkit.similarity.cka import cka_from_grams, debiased_cka, gram_linear, gram_rbf, linear_cka, rbf_cka
from graftkit.similarity.matrix import LayerSimilarity, layer_similarity, similarity_matrix
from graftkit.similarity.metrics import METRICS, Metric, get_metric, minibatch_cka
from graftkit.similarity.procrustes import procrustes_distance, procrustes_similarity
from graftkit.similarity.rsa import rdm, rsa
from graftkit.similarity.streaming import GramAccumulator, MinibatchCKA
from graftkit.similarity.texts import TextBatches
from graftkit.similarity.weights import weight_correlation, weight_correlations

__all__ = [
    "METRICS",
    "Activations",
    "GramAccumulator",
    "LayerRecorder",
    "LayerSimilarity",
    "Metric",
    "MinibatchCKA",
    "TextBatches",
    "capture",
    "cca_r2",
    "cka_from_grams",
    "debiased_cka",
    "default_layers",
    "get_metric",
    "gram_linear",
    "gram_rbf",
    "layer_similarity",
    "linear_cka",
    "minibatch_cka",
    "procrustes_distance",
    "procrustes_similarity",
    "pwcca",
    "rbf_cka",
    "rdm",
    "rsa",
    "similarity_matrix",
    "svcca",
    "weight_correlation",
    "weight_correlations",
]
