"""Ablation tables and plots from run records: dropout on/off, lambda x K, rank.

Each collector reads run records only (through `load_records`, which refuses records of another
profile), identifies every run's place in the ablation from its resolved configuration
(`config.hp`), and writes a CSV (full precision), a Markdown file beside it and a plot (PNG + PDF),
all atomically. Statistics follow `tables.py`: per task, the median over seeds of each run's score
at its best epoch with the sample standard deviation (ddof=1) beside it; the average is the mean of
the task medians, its spread the standard deviation over seeds of the per-seed mean across tasks.

Outputs (for ``out_csv = results/<stem>.csv`` and ``plots_dir = results/plots``):

* `collect_dropout`: ``<stem>.csv``, ``<stem>.md``, ``<stem>_cosines.csv`` and the plots
  ``<stem>_scores`` and ``<stem>_cosines``.
* `collect_lambda_k`: ``<stem>.csv``, ``<stem>.md`` and the heatmap ``<stem>_heatmap``.
* `collect_rank`: ``<stem>.csv``, ``<stem>.md`` and the plot ``<stem>``.

One module per study (:mod:`.dropout`, :mod:`.lambda_k`, :mod:`.rank`) and :mod:`.common` for what
they share.
"""

from .common import RANK_THRESHOLD
from .dropout import collect_dropout, dropout_cosines, dropout_table
from .lambda_k import collect_lambda_k, lambda_k_table
from .rank import collect_rank, rank_table

__all__ = [
    "RANK_THRESHOLD",
    "collect_dropout",
    "collect_lambda_k",
    "collect_rank",
    "dropout_cosines",
    "dropout_table",
    "lambda_k_table",
    "rank_table",
]
