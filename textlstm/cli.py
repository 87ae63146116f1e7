"""The `textlstm` command line: argparse subcommands over the public API.

    textlstm quickstart                          PTB LM + a short SST-2 classifier + BLiMP probe + exports
    textlstm tokenizer train --input F ...       train a SentencePiece or word tokenizer
    textlstm train lm [--config C] [k=v ...]     train a language model into a run dir
    textlstm train lm --run-dir R epochs=N       resume or continue the run in R
    textlstm train classifier [--config C] ...   train a sentiment classifier
    textlstm train agreement [--config C] ...    train a number-agreement classifier on UD EWT
    textlstm evaluate lm --run-dir R --file F    perplexity of a run's model on a file
    textlstm evaluate classifier --run-dir R --file F   accuracy, F1, report of a classifier
    textlstm generate --run-dir R --prompt P     continue prompts
    textlstm score --run-dir R TEXT ...          per-token log-probs and surprisals
    textlstm predict --run-dir R TEXT ...        labels and probabilities of a classifier
    textlstm export R --name N                   any run's model as the next TF Serving version, saved_models/N/V
    textlstm probe minimal-pairs|syntaxgym|number|templates (--run-dir R | --saved-model D)
                                                 agreement probes; reports under R/probes/ or --output-dir
    textlstm probe units --run-dir R             diagnostic classifiers, number units: ablation, patching
    textlstm inspect --run-dir R TEXT ...        every gate of a run's model (of an ensemble: R/member_K)
"""

import argparse
import json
import logging
import os
import sys

import tensorflow as tf

from textlstm.config import AgreementConfig, LanguageModelConfig, SentimentConfig, load_config
from textlstm.data import read_lines
from textlstm.probes import KerasScorer, load_scorer
from textlstm.recipes import probes
from textlstm.recipes.agreement import train_agreement
from textlstm.recipes.language_model import evaluate_run, load_language_model, train_language_model
from textlstm.recipes.run_steps import export_run
from textlstm.recipes.sentiment import accuracy_summary, evaluate_classifier_run, load_classifier, train_sentiment
from textlstm.runs import CONFIG_FILE, check_run
from textlstm.tokenizers import save_tokenizer, train_tokenizer


def run_config(config_class, args, default_config=None):
    """The config of a train command: `--run-dir` (that run's config.json) or `--config`, then overrides."""
    if getattr(args, "run_dir", None):
        if args.config:
            raise ValueError("give --config or --run-dir, not both (--run-dir continues that run with its config).")
        check_run(args.run_dir, config_class.task)  # another task's config.json would fail field by field
        overrides = [f"run_dir={args.run_dir}", *args.overrides]
        return load_config(config_class, os.path.join(args.run_dir, CONFIG_FILE), overrides)
    return load_config(config_class, args.config or default_config, args.overrides)


def cmd_quickstart(args):
    lm_config = run_config(LanguageModelConfig, argparse.Namespace(config=args.config, overrides=args.overrides))
    cmd_train_lm(argparse.Namespace(config=args.config, run_dir=None, overrides=args.overrides))
    print()
    cmd_train_classifier(argparse.Namespace(config=args.classifier_config, run_dir=None, overrides=[]))
    print()
    output_dir = os.path.join(lm_config.run_dir, "probes")
    result = probes.probe_minimal_pairs(load_scorer(run_dir=lm_config.run_dir), output_dir, blimp_dir=args.blimp_dir,
                                        linguistics_terms=["subject_verb_agreement"])
    print_accuracy_rows([result["overall"], *result["by_paradigm"]])
    print(f"BLiMP subject-verb agreement report: {os.path.join(output_dir, 'minimal_pairs.md')}")
    print()
    classifier_dir = run_config(SentimentConfig, argparse.Namespace(config=args.classifier_config, overrides=[])).run_dir
    for run_dir, name in ((lm_config.run_dir, "quickstart_lm"), (classifier_dir, "quickstart_sst2")):
        print_served(export_run(run_dir, name, args.base_dir), QUICKSTART_SENTENCES)


QUICKSTART_SENTENCES = ["the company said it would buy shares", "a gorgeous , witty , seductive movie ."]


def print_served(version_dir, texts):
    """Reloads an export as TF Serving would (tf.saved_model.load) and prints its serving_default answers."""
    outputs = tf.saved_model.load(version_dir).signatures["serving_default"](texts=tf.constant(texts))
    print(f"exported to {version_dir}; its serving_default signature answers:")
    for row, text in enumerate(texts):
        if "label" in outputs:
            print(f"  {text!r}: {outputs['label'][row].numpy().decode()} "
                  f"(p = {outputs['probabilities'][row].numpy().max():.3f})")
        else:
            print(f"  {text!r}: log-prob {outputs['sentence_log_prob'][row].numpy():.2f} nats, mean surprisal "
                  f"{outputs['mean_surprisal'][row].numpy():.2f} bits over {outputs['lengths'][row].numpy()} tokens")


def cmd_train_lm(args):
    config = run_config(LanguageModelConfig, args)
    metrics = train_language_model(config)
    if metrics.get("worker"):  # a worker of a multi-worker run: the chief (worker 0) evaluates and saves
        print(f"worker {metrics['worker']} of {metrics['workers']}: trained; the chief's run directory "
              f"{config.run_dir} holds the model and metrics")
        return
    print(f"run directory: {config.run_dir}")
    print(f"validation perplexity: {metrics['valid_perplexity']:.2f} ({metrics['valid_tokens']} tokens)")
    print(f"test perplexity:       {metrics['test_perplexity']:.2f} ({metrics['test_tokens']} tokens)")
    if config.tokenizer != "word":
        print(f"per word: validation {metrics['valid_word_perplexity']:.2f}, test {metrics['test_word_perplexity']:.2f}")
    if metrics["seconds_per_epoch"]:
        print(f"training: {metrics['epochs']} epochs, {metrics['seconds_per_epoch']:.0f} s/epoch, "
              f"{metrics['train_tokens_per_second']:.0f} tokens/s")
    print("samples:")
    for sample in metrics["samples"]:
        print(f"  {sample}")


def cmd_tokenizer_train(args):
    lines = [line for path in args.input for line in read_lines(path, args.encoding)]
    tokenizer = train_tokenizer(args.kind, lines, args.vocabulary_size, args.min_count)
    save_tokenizer(tokenizer, args.output)
    print(f"{args.kind} tokenizer of {tokenizer.vocabulary_size()} tokens written to {args.output}")


def cmd_train_classifier(args):
    config = run_config(SentimentConfig, args, default_config="sst2_bilstm")
    metrics = train_sentiment(config)
    print(f"run directory: {config.run_dir}")
    print(f"{config.dataset}: {accuracy_summary(metrics)}")
    if "train_seconds" in metrics:
        epochs = metrics.get("epochs", "-")
        epochs = " + ".join(map(str, epochs)) if isinstance(epochs, list) else epochs  # an ensemble's, per member
        print(f"training: {epochs} epochs, {metrics['train_seconds']:.0f} s")
    if not config.cross_validation_folds:
        print(f"report: {os.path.join(config.run_dir, 'report.md')}")


def cmd_train_agreement(args):
    config = run_config(AgreementConfig, args, default_config="agreement_ud")
    metrics = train_agreement(config)
    print(f"run directory: {config.run_dir}")
    print(f"test accuracy {metrics['test_accuracy']:.4f} (majority class {metrics['majority_class_accuracy']:.4f}); "
          f"by attractors: " + ", ".join(f"{bucket}: {'n/a' if value is None else f'{value:.3f}'}"
                                         for bucket, value in metrics["test_accuracy_by_attractors"].items()))
    print(f"report: {os.path.join(config.run_dir, 'report.md')}")


def cmd_evaluate_lm(args):
    # Unset options follow the run's own config, so the numbers match its metrics.json.
    result = evaluate_run(
        args.run_dir, args.file, encoding=args.encoding, mode=args.mode, batch_size=args.batch_size,
        sequence_length=args.sequence_length,
        # A progress bar on a terminal; piped stdout stays one JSON document.
        verbose=1 if sys.stdout.isatty() else 0,
    )
    print(json.dumps(result, indent=2))


def cmd_evaluate_classifier(args):
    metrics = evaluate_classifier_run(args.run_dir, args.file, encoding=args.encoding, output_dir=args.output_dir)
    low, high = metrics["accuracy_interval"]
    print(json.dumps({"file": args.file, "accuracy": metrics["accuracy"], "accuracy_interval": [low, high],
                      "macro_f1": metrics["macro_f1"], "examples": metrics["num_examples"],
                      "majority_class_accuracy": metrics["majority_class_accuracy"]}, indent=2))


def read_texts(args, config_class):
    """The texts of a `score` / `predict` command: its arguments, then the lines of --file."""
    texts = list(args.texts)
    if args.file:
        encoding = args.encoding or load_config(config_class, os.path.join(args.run_dir, CONFIG_FILE)).encoding
        texts += read_lines(args.file, encoding)
    if not texts:
        raise ValueError(f"{args.command}: give texts as arguments or --file; received neither.")
    return texts


def cmd_predict(args):
    texts = read_texts(args, SentimentConfig)
    classifier = load_classifier(args.run_dir)
    predictions = classifier.predict(texts)
    names = classifier.label_names
    for text, label, probabilities in zip(texts, predictions.labels, predictions.probabilities):
        if args.format == "jsonl":
            print(json.dumps({"text": text, "label": label,
                              "probabilities": {n: float(p) for n, p in zip(names, probabilities)}}))
        else:
            shown = "  ".join(f"{n}={p:.3f}" for n, p in zip(names, probabilities))
            print(f"{label}\t{shown}\t{text}")


def cmd_generate(args):
    lm = load_language_model(args.run_dir)
    prompts = args.prompt or [""]
    texts = lm.generate(prompts * args.num_samples, max_length=args.max_length, sampler=args.sampler,
                        temperature=args.temperature, k=args.top_k, p=args.top_p, seed=args.seed,
                        num_beams=args.num_beams)
    for text in texts:
        print(text)


def cmd_score(args):
    texts = read_texts(args, LanguageModelConfig)
    for scores in KerasScorer(load_language_model(args.run_dir), prepare=args.prepare).score(texts):
        if args.format == "jsonl":
            print(json.dumps({"text": scores.text, "tokens": scores.tokens, "spans": scores.spans,
                              "log_probs": scores.log_probs, "surprisals": scores.surprisals,
                              "total_log_prob": scores.total_log_prob}))
        else:
            print(f"{scores.text}\t(total log-prob {scores.total_log_prob:.3f} nats)")
            for token, surprisal in zip(scores.tokens, scores.surprisals):
                print(f"  {token:<20} {surprisal:8.3f} bits")


def cmd_export(args):
    version_dir = export_run(args.run_dir, args.name, args.base_dir, args.top_k, args.version)
    with open(os.path.join(version_dir, "assets.extra", "textlstm_export.json"), encoding="utf-8") as f:
        signatures = json.load(f)["signatures"]
    print(f"exported to {version_dir} (signatures: {', '.join(signatures)}); TF Serving config: "
          f"{os.path.join(args.base_dir, 'models.config')}")


def cmd_probe(args):
    scorer = load_scorer(run_dir=args.run_dir, saved_model=args.saved_model, prepare=args.prepare)
    if args.output_dir:
        output_dir = args.output_dir
    elif args.run_dir:
        output_dir = os.path.join(args.run_dir, "probes")
    else:  # saved_models/NAME/VERSION -> probes/NAME_VERSION
        version_dir = os.path.normpath(args.saved_model)
        output_dir = os.path.join("probes", f"{os.path.basename(os.path.dirname(version_dir))}_"
                                            f"{os.path.basename(version_dir)}")
    if args.probe == "minimal-pairs":
        result = probes.probe_minimal_pairs(
            scorer, output_dir, files=args.files, blimp_dir=None if args.files else args.blimp_dir,
            paradigms=args.paradigm, linguistics_terms=args.linguistics_term, method=args.method,
            normalization=args.normalization, unk=args.unk)
        rows = [result["overall"], *result["by_paradigm"]]
    elif args.probe == "templates":
        result = probes.probe_templates(scorer, output_dir, args.condition, args.max_pairs_per_condition, args.method,
                                        args.normalization, args.unk)
        rows = [result["overall"], *result["by_paradigm"]]
    elif args.probe == "number":
        result = probes.probe_number(scorer, output_dir, args.file, args.unk)
        rows = [result["overall"], *result["by_attractors"]]
    else:
        accuracies = probes.probe_syntaxgym(scorer, output_dir, args.suites)
        rows = [{"name": name, "accuracy": accuracy, "num_items": None} for name, accuracy in accuracies.items()]
    print_accuracy_rows(rows)
    print(f"reports in {output_dir}")


def cmd_probe_units(args):
    scorer = KerasScorer.from_run_dir(args.run_dir, prepare=args.prepare)
    output_dir = args.output_dir or os.path.join(args.run_dir, "probes")
    result = probes.probe_units(scorer, output_dir, args.train_file, args.test_file, top_units=args.top_units,
                                group_sizes=args.group_sizes, random_draws=args.random_draws,
                                max_pairs_per_condition=args.max_pairs_per_condition, seed=args.seed)
    for line in result["summary"]:
        print(line)
    print(f"report: {os.path.join(output_dir, 'units.md')}")


def cmd_inspect(args):
    units = [parse_unit(text) for text in args.units or []]
    output_dir = args.output_dir or os.path.join(args.run_dir, "inspect")
    for result in probes.inspect_run(args.run_dir, args.texts, output_dir, args.prepare, units, args.gate):
        print(f"{result['text']}\n  tokens: {' '.join(result['tokens'])}\n  arrays: {result['arrays']}")
        for path in result["heatmaps"]:
            print(f"  heatmap: {path}")
    if units:
        print(f"unit traces: {os.path.join(output_dir, 'unit_traces.png')}")


def parse_unit(text):
    """"LAYER:UNIT" -> (layer, unit)."""
    try:
        layer, unit = (int(part) for part in text.split(":"))
    except ValueError:
        raise ValueError(f"--units: expected LAYER:UNIT (e.g. 1:194), received {text!r}.") from None
    return layer, unit


def print_accuracy_rows(rows):
    for row in rows:
        accuracy = "n/a" if row["accuracy"] is None else f"{row['accuracy']:.4f}"
        interval = row.get("interval")
        interval = f"  [{interval[0]:.3f}, {interval[1]:.3f}]" if interval else ""
        count = f"  ({row['num_scored']} of {row['num_items']} scored)" if row.get("num_items") else ""
        print(f"{row['name']:<45} {accuracy}{interval}{count}")


def build_parser():
    parser = argparse.ArgumentParser(prog="textlstm", description="LSTM text models on Keras 3 and TensorFlow.")
    parser.add_argument("--log-level", default="INFO", help="logging level (default INFO)")
    commands = parser.add_subparsers(dest="command", required=True)

    def add_config_args(p, default=None):
        p.add_argument("--config", default=default, help="JSON config under configs/ (default: %(default)s)")
        p.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides, e.g. epochs=2")

    p = commands.add_parser("quickstart", help="train and evaluate the PTB quickstart LM and a short SST-2 "
                                               "classifier, then probe the LM on BLiMP's subject-verb agreement")
    add_config_args(p, "ptb_quickstart")
    p.add_argument("--classifier-config", default="sst2_quickstart", help="the classifier's config (default: %(default)s)")
    p.add_argument("--blimp-dir", default=probes.DEFAULT_BLIMP_DIR, help="BLiMP, probed at the end (default: %(default)s)")
    p.add_argument("--base-dir", default="saved_models", help="where both models are exported (default: %(default)s)")
    p.set_defaults(func=cmd_quickstart)

    tokenizer = commands.add_parser("tokenizer", help="tokenizer commands").add_subparsers(dest="action", required=True)
    p = tokenizer.add_parser("train", help="train a tokenizer on text files")
    p.add_argument("--input", nargs="+", required=True, help="text files, one sentence a line")
    p.add_argument("--kind", choices=("unigram", "bpe", "word"), default="unigram")
    p.add_argument("--vocabulary-size", type=int, default=8000)
    p.add_argument("--min-count", type=int, default=1, help="word tokenizer only")
    p.add_argument("--encoding", default="utf-8")
    p.add_argument("--output", required=True, help="directory for config.json and the vocabulary")
    p.set_defaults(func=cmd_tokenizer_train)

    train = commands.add_parser("train", help="training commands").add_subparsers(dest="task", required=True)
    p = train.add_parser("lm", help="train a language model")
    add_config_args(p)
    p.add_argument("--run-dir", help="resume or continue this run with its own config.json (overrides apply)")
    p.set_defaults(func=cmd_train_lm)
    p = train.add_parser("classifier", help="train a sentiment classifier")
    add_config_args(p)  # default: sst2_bilstm, unless --run-dir
    p.add_argument("--run-dir", help="resume or continue this run with its own config.json (overrides apply)")
    p.set_defaults(func=cmd_train_classifier)
    p = train.add_parser("agreement", help="train a number-agreement classifier (Linzen et al. 2016) on UD")
    add_config_args(p)  # default: agreement_ud, unless --run-dir
    p.add_argument("--run-dir", help="resume or continue this run with its own config.json (overrides apply)")
    p.set_defaults(func=cmd_train_agreement)

    evaluate = commands.add_parser("evaluate", help="evaluation commands").add_subparsers(dest="task", required=True)
    p = evaluate.add_parser("lm", help="perplexity of a trained language model on a text file")
    p.add_argument("--run-dir", required=True)
    p.add_argument("--file", required=True)
    p.add_argument("--encoding", help="default: the run's config")
    p.add_argument("--mode", choices=("stream", "sentence"), help="default: the run's config")
    p.add_argument("--batch-size", type=int, help="default: the run's eval_batch_size")
    p.add_argument("--sequence-length", type=int, help="default: the run's config")
    p.set_defaults(func=cmd_evaluate_lm)
    p = evaluate.add_parser("classifier", help="accuracy, macro-F1 and a report of a classifier on a labeled file")
    p.add_argument("--run-dir", required=True)
    p.add_argument("--file", required=True, help="a .tsv with a header (sentence, label) or `<label> <text>` lines")
    p.add_argument("--encoding", help="default: the run's config")
    p.add_argument("--output-dir", help="report folder (default: RUN/evaluations/FILE_NAME/)")
    p.set_defaults(func=cmd_evaluate_classifier)

    p = commands.add_parser("generate", help="generate text with a trained language model")
    p.add_argument("--run-dir", required=True)
    p.add_argument("--prompt", action="append", help="a prompt (repeatable); default: from scratch")
    p.add_argument("--num-samples", type=int, default=1, help="samples per prompt")
    p.add_argument("--max-length", type=int, default=30, help="new tokens at most")
    p.add_argument("--sampler", choices=("greedy", "top_k", "top_p", "beam"), default="top_p")
    p.add_argument("--temperature", type=float, default=1.0)
    p.add_argument("--top-k", type=int, default=40)
    p.add_argument("--top-p", type=float, default=0.9)
    p.add_argument("--num-beams", type=int, default=4, help="beams kept by --sampler beam")
    p.add_argument("--seed", type=int, default=None)
    p.set_defaults(func=cmd_generate)

    p = commands.add_parser("score", help="per-token log-probs and surprisals under a trained language model")
    p.add_argument("--run-dir", required=True)
    p.add_argument("texts", nargs="*", help="texts to score")
    p.add_argument("--file", help="score every line of this file too")
    p.add_argument("--encoding", help="of --file (default: the run's config)")
    p.add_argument("--format", choices=("table", "jsonl"), default="table")
    p.add_argument("--prepare", choices=("none", "ptb", "auto"), default="none",
                   help="text preparation (textlstm.probes.scorer); default: score the text as given")
    p.set_defaults(func=cmd_score)

    p = commands.add_parser("predict", help="labels and probabilities from a trained classifier")
    p.add_argument("--run-dir", required=True)
    p.add_argument("texts", nargs="*", help="texts to classify")
    p.add_argument("--file", help="classify every line of this file too")
    p.add_argument("--encoding", help="of --file (default: the run's config)")
    p.add_argument("--format", choices=("table", "jsonl"), default="table")
    p.set_defaults(func=cmd_predict)

    p = commands.add_parser("export", help="export a run's model (any task) as the next version of BASE/NAME "
                                           "for TF Serving: raw strings in, tokenization in the graph")
    p.add_argument("run_dir", help="a run directory with model.keras")
    p.add_argument("--name", required=True, help="model name: BASE/NAME/VERSION")
    p.add_argument("--base-dir", default="saved_models", help="default: %(default)s")
    p.add_argument("--top-k", type=int, default=10, help="a language model's next_token candidates (default: 10)")
    p.add_argument("--version", type=int, help="the version number (default: the next free one; never overwritten)")
    p.set_defaults(func=cmd_export)

    probe = commands.add_parser("probe", help="agreement probes on a language model").add_subparsers(
        dest="probe", required=True)

    def add_probe(name, help_text):
        p = probe.add_parser(name, help=help_text)
        model = p.add_mutually_exclusive_group(required=True)
        model.add_argument("--run-dir", help="a `textlstm train lm` run directory")
        model.add_argument("--saved-model", help="an export: saved_models/NAME/VERSION")
        p.add_argument("--prepare", choices=("auto", "ptb", "none"), default="auto",
                       help="text preparation: PTB spelling for word vocabularies (auto), raw for SentencePiece")
        p.add_argument("--output-dir", help="report folder (default: RUN/probes, or probes/VERSION)")
        p.set_defaults(func=cmd_probe)
        return p

    p = add_probe("minimal-pairs", "BLiMP or any sentence_good/sentence_bad JSONL")
    p.add_argument("--files", nargs="+", help="JSONL files of pairs (default: BLiMP from --blimp-dir)")
    p.add_argument("--blimp-dir", default=probes.DEFAULT_BLIMP_DIR, help="default: %(default)s")
    p.add_argument("--paradigm", action="append", help="BLiMP UID to keep (repeatable; default: all)")
    p.add_argument("--linguistics-term", action="append", help="e.g. subject_verb_agreement (repeatable)")
    p.add_argument("--method", choices=("full", "one_prefix"), default="full")
    p.add_argument("--normalization", choices=("sum", "mean"), default="sum", help="full method only")
    p.add_argument("--unk", choices=("score", "skip"), default="score", help="pairs with <unk> in a critical word")
    p = add_probe("syntaxgym", "SyntaxGym test suites (JSON)")
    p.add_argument("suites", nargs="+", help="suite JSON files")
    p = add_probe("number", "Linzen et al. (2016) number prediction from UD CoNLL-U")
    p.add_argument("--file", default="../shared/data/ud_english_ewt/en_ewt-ud-test.conllu", help="default: %(default)s")
    p.add_argument("--unk", choices=("score", "skip"), default="score", help="items whose verb form is <unk>")
    p = add_probe("templates", "Marvin & Linzen (2018) agreement templates")
    p.add_argument("--condition", action="append", help="condition to keep (repeatable; default: all 9)")
    p.add_argument("--max-pairs-per-condition", type=int, default=0, help="0 = all")
    p.add_argument("--method", choices=("full", "one_prefix"), default="full")
    p.add_argument("--normalization", choices=("sum", "mean"), default="sum", help="full method only")
    p.add_argument("--unk", choices=("score", "skip"), default="score", help="pairs with <unk> in a critical word")
    ud = probes.DEFAULT_UD_DIR
    p = probe.add_parser("units", help="diagnostic classifiers and number units (ranking, ablation, patching)")
    p.add_argument("--run-dir", required=True, help="a `textlstm train lm` run directory")
    p.add_argument("--prepare", choices=("auto", "ptb", "none"), default="auto",
                   help="text preparation: PTB spelling for word vocabularies (auto), raw for SentencePiece")
    p.add_argument("--output-dir", help="report folder (default: RUN/probes)")
    p.add_argument("--train-file", default=f"{ud}/en_ewt-ud-train.conllu",
                   help="UD items that train the probes and rank units (default: %(default)s)")
    p.add_argument("--test-file", nargs="+", default=[f"{ud}/en_ewt-ud-dev.conllu", f"{ud}/en_ewt-ud-test.conllu"],
                   help="held-out UD items (default: %(default)s)")
    p.add_argument("--top-units", type=int, default=10, help="top units ablated and patched one at a time")
    p.add_argument("--group-sizes", type=int, nargs="+", default=[2, 4, 8, 16], help="top-k groups")
    p.add_argument("--random-draws", type=int, default=20, help="matched random unit groups per size")
    p.add_argument("--max-pairs-per-condition", type=int, default=100, help="template pairs per condition")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_probe_units)

    p = commands.add_parser("inspect", help="every gate of a run's model over texts: arrays (.npz) and heatmaps")
    p.add_argument("--run-dir", required=True, help="any run directory with model.keras")
    p.add_argument("texts", nargs="+", help="texts to inspect")
    p.add_argument("--output-dir", help="default: RUN/inspect")
    p.add_argument("--prepare", choices=("auto", "ptb", "none"), default="auto",
                   help="a language model's text preparation (classifiers read the text as given)")
    p.add_argument("--units", nargs="+", metavar="LAYER:UNIT",
                   help="also plot these units over all the texts (unit_traces.png), e.g. --units 1:194 1:104")
    p.add_argument("--gate", default="c", help="what --units plots: a gate, c or h (default: %(default)s)")
    p.set_defaults(func=cmd_inspect)
    return parser


PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))


def raised_by_textlstm(error):
    """Whether `error` was raised by textlstm's own code (its checks of what the user gave it), rather than
    from inside Keras, TensorFlow or another library, where it is an internal error worth its traceback."""
    frame = error.__traceback__
    while frame.tb_next is not None:
        frame = frame.tb_next
    return os.path.abspath(frame.tb_frame.f_code.co_filename).startswith(PACKAGE_DIR + os.sep)


def main(argv=None):
    """Runs a subcommand. A user error (bad config, missing file, bad data, refused run directory, too little
    disk, a diverged training, no readable checkpoint), which textlstm's own checks raise, prints one line and
    returns 2; any other error keeps its traceback."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if logging.getLogger().getEffectiveLevel() > logging.DEBUG:  # tf.distribute logs each collective at INFO
        logging.getLogger("tensorflow").setLevel(logging.WARNING)
    try:
        args.func(args)
    except (ValueError, OSError, FloatingPointError, RuntimeError) as error:
        if not raised_by_textlstm(error):
            raise
        print(f"textlstm: error: {error}", file=sys.stderr)
        return 2
    return 0
