"""Recipes: one module per task, config in, run directory out."""

from textlstm.recipes.language_model import (
    evaluate_language_model,
    evaluate_run,
    load_language_model,
    train_language_model,
)
from textlstm.recipes.sentiment import evaluate_classifier_run, load_classifier, train_sentiment
from textlstm.recipes.agreement import evaluate_agreement, load_agreement_classifier, train_agreement
from textlstm.recipes.run_steps import export_run
