"""Tasks: GLUE here (real loaders and embedded proxies with the same schema); NLG tasks beside it."""

from deltalora.tasks.base import TaskSpec
from deltalora.tasks.data_checks import DataError, check_dataset_dict, check_jsonl_file
from deltalora.tasks.glue import GLUE_TASKS, get_glue_task, glue_features, load_glue, write_glue_proxy

__all__ = [
    "GLUE_TASKS",
    "DataError",
    "TaskSpec",
    "check_dataset_dict",
    "check_jsonl_file",
    "get_glue_task",
    "glue_features",
    "load_glue",
    "write_glue_proxy",
]
