"""TFDS: the local corpora as TFDS datasets, and stock TFDS names the user prepared.

textlstm never downloads. Its own builders read a *manual directory* (the
files in ../shared/data); a stock TFDS name works only where the user has
already prepared it under `data_dir` (e.g. `tfds build lm1b` on a machine
with network, then copied). Anything else raises an error that says so.

Example:
>>> lines = tfds_lines("textlstm_ptb", "validation", data_dir="/tmp/tfds",
...                    manual_dir="../shared/data/ptb")  # doctest: +SKIP
"""

import logging
import os

import tensorflow_datasets as tfds

from textlstm.data.readers import DATA_HELP, read_lines

logger = logging.getLogger(__name__)


class TextlstmPtb(tfds.core.GeneratorBasedBuilder):
    """Penn Treebank, Mikolov et al. (2010) preprocessing: one sentence an example."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Reads ptb.{train,valid,test}.txt from a manual directory."}
    MANUAL_DOWNLOAD_INSTRUCTIONS = (
        "Pass the directory holding ptb.train.txt, ptb.valid.txt and ptb.test.txt "
        "(../shared/data/ptb) as manual_dir."
    )
    FILES = {"train": "ptb.train.txt", "validation": "ptb.valid.txt", "test": "ptb.test.txt"}

    def _info(self):
        return tfds.core.DatasetInfo(
            builder=self,
            description="Penn Treebank (Mikolov 2010 LM preprocessing), one sentence per example.",
            features=tfds.features.FeaturesDict({"text": tfds.features.Text()}),
            homepage="https://www.fit.vutbr.cz/~imikolov/rnnlm/",
            disable_shuffling=True,  # sentence order is document order, which BPTT streams keep
        )

    def _split_generators(self, dl_manager):
        return {split: self._generate_examples(os.path.join(dl_manager.manual_dir, name))
                for split, name in self.FILES.items()}

    def _generate_examples(self, path):
        for index, line in enumerate(read_lines(path)):
            yield index, {"text": line}


def load_builder(name, data_dir, manual_dir=None):
    """A prepared TFDS builder for `name`; prepares textlstm's own builders from `manual_dir`.

    Raises:
        FileNotFoundError: the dataset is not prepared and cannot be built
            offline; the message names `data_dir` and how to prepare it.
    """
    data_dir = os.path.expanduser(data_dir)
    builder = tfds.builder(name, data_dir=data_dir)
    if builder.is_prepared():
        return builder
    if manual_dir and builder.MANUAL_DOWNLOAD_INSTRUCTIONS:
        if not os.path.isdir(manual_dir):
            raise FileNotFoundError(f"TFDS manual_dir not found: {manual_dir}. {DATA_HELP}")
        builder.download_and_prepare(
            download_config=tfds.download.DownloadConfig(manual_dir=manual_dir, try_download_gcs=False)
        )
        return builder
    raise FileNotFoundError(
        f"TFDS dataset {name!r} is not prepared in {data_dir}. textlstm never downloads: "
        f"prepare it where you have network (`tfds build {name} --data_dir DIR`) and copy DIR here, "
        f"or, for textlstm's own builders, pass manual_dir. {DATA_HELP}"
    )


def tfds_lines(name, split, data_dir="~/tensorflow_datasets", manual_dir=None, text_key="text", max_lines=0):
    """The `text_key` feature of a TFDS split as a list of non-empty strings."""
    builder = load_builder(name, data_dir, manual_dir)
    if split not in builder.info.splits:
        raise ValueError(f"`split` {split!r} is not a split of TFDS {name!r}; it has {sorted(builder.info.splits)}.")
    dataset = builder.as_dataset(split=split)
    lines = []
    for example in dataset.as_numpy_iterator():
        text = example[text_key].decode("utf-8").strip()
        if text:
            lines.append(text)
            if max_lines and len(lines) >= max_lines:
                break
    return lines
