"""A mean-pooling classification head for the embedded MiniLM.

The embedded model (sentence-transformers all-MiniLM-L6-v2) was trained to represent a sentence by
the mean of its token states; its [CLS] state carries almost no information until the last layer
(relative spread across inputs 0.015 after layer 1, 0.89 after layer 6; docs/glue_proxies.md). The
standard BERT head reads [CLS] through a pooler and learns slowly from it; the mean of the token
states is the representation this model actually has. The LoRA targets (query, value) and every
method are unchanged; only the head that reads the encoder differs. The paper profile keeps the
standard RoBERTa head.
"""

from __future__ import annotations

import torch
from torch import nn
from transformers import BertModel, BertPreTrainedModel
from transformers.modeling_outputs import SequenceClassifierOutput


class BertMeanPoolForSequenceClassification(BertPreTrainedModel):
    """BERT encoder -> masked mean of the last hidden states -> dropout -> linear classifier."""

    def __init__(self, config):
        super().__init__(config)
        self.num_labels = config.num_labels
        self.bert = BertModel(config, add_pooling_layer=False)
        self.dropout = nn.Dropout(
            config.classifier_dropout if config.classifier_dropout is not None else config.hidden_dropout_prob
        )
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)
        self.post_init()

    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, labels=None, **kwargs):
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        hidden = self.bert(
            input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
        ).last_hidden_state
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)
        logits = self.classifier(self.dropout(pooled))
        loss = None
        if labels is not None:
            if self.num_labels == 1:
                loss = nn.functional.mse_loss(logits.squeeze(-1), labels.to(logits.dtype))
            else:
                loss = nn.functional.cross_entropy(logits.view(-1, self.num_labels), labels.view(-1))
        return SequenceClassifierOutput(loss=loss, logits=logits)
