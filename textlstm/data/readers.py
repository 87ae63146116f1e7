"""Readers: text files in, decoded lines out, with errors that name file and line."""

import logging
import os

logger = logging.getLogger(__name__)

DATA_HELP = (
    "textlstm never downloads data: the corpora live in ../shared/data "
    "(see its README.md) or wherever you put your own copy."
)


class DataError(ValueError):
    """Bad input data; the message names the file, the line and what was wrong."""


def check_exists(path):
    """Raises FileNotFoundError naming `path` and where data comes from."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"data file not found: {path}. {DATA_HELP}")


def read_lines(path, encoding="utf-8", skip_empty=True, max_lines=0):
    """Reads a text file into a list of lines without their newline.

    Args:
        path: str, the file.
        encoding: str, how the bytes are decoded ("utf-8", "latin-1", ...).
        skip_empty: bool, drop lines that are empty after stripping, so an
            empty line never becomes an empty sequence.
        max_lines: int, stop after this many kept lines; 0 = all.

    Raises:
        FileNotFoundError: `path` does not exist.
        DataError: a line does not decode; names file, line and column.

    Example:
    >>> import tempfile
    >>> with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as f:
    ...     _ = f.write("a b\\n\\nc\\n")
    >>> read_lines(f.name)
    ['a b', 'c']
    """
    check_exists(path)
    lines = []
    with open(path, "rb") as f:
        for line_number, raw in enumerate(f, start=1):
            try:
                line = raw.decode(encoding).rstrip("\r\n")
            except UnicodeDecodeError as error:
                raise DataError(
                    f"{path}:{line_number}: bytes {raw[error.start:error.end]!r} at column "
                    f"{error.start + 1} are not valid {encoding}; pass the file's encoding "
                    f"(e.g. encoding='latin-1')."
                ) from None
            if skip_empty and not line.strip():
                continue
            lines.append(line.strip())
            if max_lines and len(lines) >= max_lines:
                break
    logger.info("read %d lines from %s", len(lines), path)
    return lines
