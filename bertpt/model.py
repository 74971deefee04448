"""BERT for pretraining (masked LM + next-sentence prediction), parameter-compatible with
`transformers.BertForPreTraining`: same module tree, same parameter names, same tied weights, so a
state dict moves between the two with `load_state_dict(strict=True)` and an export loads with
`from_pretrained`. Written out here, rather than using the HF class, for three things the HF class
does not do and that decide pretraining speed (measured in docs/performance.md):

- Unpadding (bertpt/unpad.py): with labels, every token-wise op (embeddings, Q/K/V/output
  projections, FFN, LayerNorm, dropout) runs on the real tokens only, packed into (T, H); attention
  runs on the sequences padded again, per length group. Trimming each batch to its longest
  instance alone saves little: most batches hold a full-length one.
- The MLM head (transform + V x H projection) runs only on the masked positions (~15% of tokens).
- Dropout through bertpt/fast_dropout.py, whose CPU path is much cheaper than `F.dropout`.
  With attention dropout (training) attention is written out so that it uses that dropout too;
  without it (evaluation) it is one `scaled_dot_product_attention` call.

Optional activation checkpointing (`gradient_checkpointing`) recomputes each layer in backward
with torch.utils.checkpoint (RNG state preserved, so dropout masks are the same).
No DeepSpeed import here: the model is plain PyTorch, the engine wraps it.
Shapes: B batch, L sequence length, H hidden size, V vocabulary, T real tokens, N masked positions.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
import torch.utils.checkpoint
from torch import nn
from transformers import BertConfig

from bertpt.errors import BertptError
from bertpt.fast_dropout import dropout
from bertpt.unpad import Packing, packing

# name: (layers, hidden, heads) -- Google's BERT miniatures plus base and large; FFN is 4 x hidden.
PRESETS = {
    "bert-tiny": (2, 128, 2),
    "bert-mini": (4, 256, 4),
    "bert-small": (4, 512, 8),
    "bert-medium": (8, 512, 8),
    "bert-base": (12, 768, 12),
    "bert-large": (24, 1024, 16),
}


def bert_config(model: str, vocab_size: int, pad_token_id: int = 0) -> BertConfig:
    """A preset name or a BertConfig JSON path; the vocabulary always comes from the tokenizer."""
    if model in PRESETS:
        layers, hidden, heads = PRESETS[model]
        return BertConfig(
            vocab_size=vocab_size,
            hidden_size=hidden,
            num_hidden_layers=layers,
            num_attention_heads=heads,
            intermediate_size=4 * hidden,
            pad_token_id=pad_token_id,
        )
    path = Path(model)
    if not path.is_file():
        raise BertptError(f"--model {model}: not a preset ({', '.join(PRESETS)}) and no such config file")
    try:
        config = BertConfig.from_dict(json.loads(path.read_text()))
    except (ValueError, TypeError) as e:
        raise BertptError(f"--model {model}: not a valid BertConfig JSON ({e})") from None
    if config.vocab_size != vocab_size:
        raise BertptError(
            f"--model {model} has vocab_size {config.vocab_size} but the data's tokenizer has "
            f"{vocab_size} tokens; set vocab_size to {vocab_size} or use data prepared with "
            "that config's tokenizer"
        )
    if config.hidden_size % config.num_attention_heads:
        raise BertptError(
            f"--model {model}: hidden_size {config.hidden_size} is not a multiple of "
            f"num_attention_heads {config.num_attention_heads}"
        )
    return config


@dataclass
class PretrainingOutput:
    loss: torch.Tensor | None = None  # mlm_loss + nsp_loss; mlm_loss alone without next_sentence_label
    mlm_loss: torch.Tensor | None = None
    nsp_loss: torch.Tensor | None = None  # None without next_sentence_label (MLM-only training)
    mlm_correct: torch.Tensor | None = None  # count of masked positions predicted right (no grad)
    mlm_count: torch.Tensor | None = None  # count of masked positions
    nsp_correct: torch.Tensor | None = None
    prediction_logits: torch.Tensor | None = None  # (B, L, V), only without labels
    seq_relationship_logits: torch.Tensor | None = None  # (B, 2); None in MLM-only training


class Module(nn.Module):
    """A bare container, so that attribute paths spell the Hugging Face parameter names."""


# ---------------------------------------------------------------------------------------------
# The model


class Embeddings(nn.Module):
    def __init__(self, c: BertConfig):
        super().__init__()
        self.word_embeddings = nn.Embedding(c.vocab_size, c.hidden_size, padding_idx=c.pad_token_id)
        self.position_embeddings = nn.Embedding(c.max_position_embeddings, c.hidden_size)
        self.token_type_embeddings = nn.Embedding(c.type_vocab_size, c.hidden_size)
        self.LayerNorm = nn.LayerNorm(c.hidden_size, eps=c.layer_norm_eps)
        self.p = c.hidden_dropout_prob

    def forward(self, input_ids, token_type_ids, positions):  # all (T,) or all (B, L)
        x = (
            self.word_embeddings(input_ids)
            + self.position_embeddings(positions)
            + self.token_type_embeddings(token_type_ids)
        )
        return dropout(self.LayerNorm(x), self.p, self.training)


class SelfAttention(nn.Module):
    def __init__(self, c: BertConfig):
        super().__init__()
        self.heads, self.head_dim = c.num_attention_heads, c.hidden_size // c.num_attention_heads
        self.query = nn.Linear(c.hidden_size, c.hidden_size)
        self.key = nn.Linear(c.hidden_size, c.hidden_size)
        self.value = nn.Linear(c.hidden_size, c.hidden_size)
        self.p = c.attention_probs_dropout_prob

    def forward(self, x, pk: Packing):  # (T, H) -> (T, H)
        dropout_p = self.p if self.training else 0.0
        q = self.query(x)
        if dropout_p:  # written out below: scale the packed (T, H) queries, cheaper than the (B, heads, L, L) scores
            q = q * self.head_dim**-0.5
        q, k, v = pk.to_heads(q), pk.to_heads(self.key(x)), pk.to_heads(self.value(x))
        ys = []
        for g, qg, kg, vg in zip(pk.groups, q, k, v):  # (B_g, heads, L_g, d) each
            if dropout_p:
                scores = torch.matmul(qg, kg.transpose(-1, -2)).add_(g.key_bias)  # (B_g, heads, L_g, L_g)
                ys.append(torch.matmul(dropout(torch.softmax(scores, dim=-1), dropout_p, True), vg))
            else:
                ys.append(F.scaled_dot_product_attention(qg, kg, vg, attn_mask=g.key_mask))
        return pk.from_heads(ys)  # (T, H)


class Layer(nn.Module):
    """Post-LayerNorm transformer block, as in BERT."""

    def __init__(self, c: BertConfig):
        super().__init__()
        self.attention = Module()
        self.attention.self = SelfAttention(c)
        self.attention.output = Module()
        self.attention.output.dense = nn.Linear(c.hidden_size, c.hidden_size)
        self.attention.output.LayerNorm = nn.LayerNorm(c.hidden_size, eps=c.layer_norm_eps)
        self.intermediate = Module()
        self.intermediate.dense = nn.Linear(c.hidden_size, c.intermediate_size)
        self.output = Module()
        self.output.dense = nn.Linear(c.intermediate_size, c.hidden_size)
        self.output.LayerNorm = nn.LayerNorm(c.hidden_size, eps=c.layer_norm_eps)
        self.p = c.hidden_dropout_prob
        if c.hidden_act != "gelu":
            raise BertptError(f"hidden_act {c.hidden_act!r} is not supported; bertpt implements BERT's 'gelu'")

    def forward(self, x, pk: Packing):  # (T, H) -> (T, H)
        a = self.attention
        x = a.output.LayerNorm(x + dropout(a.output.dense(a.self(x, pk)), self.p, self.training))
        h = F.gelu(self.intermediate.dense(x))
        return self.output.LayerNorm(x + dropout(self.output.dense(h), self.p, self.training))


class BertForPreTraining(nn.Module):
    def __init__(self, config: BertConfig, gradient_checkpointing: bool = False):
        super().__init__()
        self.config = config
        # Recompute each layer's activations in backward instead of keeping them: about a third more
        # compute for a fraction of the activation memory (large models, long sequences).
        self.gradient_checkpointing = gradient_checkpointing
        c = config
        self.bert = Module()
        self.bert.embeddings = Embeddings(c)
        self.bert.encoder = Module()
        self.bert.encoder.layer = nn.ModuleList(Layer(c) for _ in range(c.num_hidden_layers))
        self.bert.pooler = Module()
        self.bert.pooler.dense = nn.Linear(c.hidden_size, c.hidden_size)
        self.cls = Module()
        self.cls.predictions = Module()
        self.cls.predictions.transform = Module()
        self.cls.predictions.transform.dense = nn.Linear(c.hidden_size, c.hidden_size)
        self.cls.predictions.transform.LayerNorm = nn.LayerNorm(c.hidden_size, eps=c.layer_norm_eps)
        self.cls.predictions.decoder = nn.Linear(c.hidden_size, c.vocab_size)
        self.cls.predictions.bias = nn.Parameter(torch.zeros(c.vocab_size))
        self.cls.seq_relationship = nn.Linear(c.hidden_size, 2)
        self.apply(self._init_weights)
        # Tie the output projection to the input embeddings, and its bias to predictions.bias, as HF does.
        self.cls.predictions.decoder.weight = self.bert.embeddings.word_embeddings.weight
        self.cls.predictions.decoder.bias = self.cls.predictions.bias

    def _init_weights(self, m: nn.Module) -> None:
        std = self.config.initializer_range  # BERT: N(0, 0.02), zero biases, LayerNorm (1, 0)
        if isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, std=std)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Embedding):
            nn.init.normal_(m.weight, std=std)
            if m.padding_idx is not None:
                m.weight.data[m.padding_idx].zero_()
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)

    def mlm_head(self, h: torch.Tensor) -> torch.Tensor:
        t = self.cls.predictions.transform
        h = t.LayerNorm(F.gelu(t.dense(h)))
        return self.cls.predictions.decoder(h)  # (..., V)

    def encode(self, input_ids, token_type_ids, pk: Packing) -> torch.Tensor:
        """The encoder on the real tokens: (T, H)."""
        positions = torch.arange(pk.L, device=input_ids.device).expand(pk.B, pk.L)
        x = self.bert.embeddings(*(pk.unpad(t) for t in (input_ids, token_type_ids, positions)))
        for layer in self.bert.encoder.layer:
            if self.gradient_checkpointing and self.training and torch.is_grad_enabled():
                x = torch.utils.checkpoint.checkpoint(layer, x, pk, use_reentrant=False)
            else:
                x = layer(x, pk)
        return x

    def forward(self, input_ids, token_type_ids, attention_mask, labels=None, next_sentence_label=None):
        """input_ids, token_type_ids, attention_mask: int64 (B, L); labels: int64 (B, L), -100 where nothing is
        predicted; next_sentence_label: int64 (B,), 0 = B follows A. Without labels: logits of every position and
        the NSP logits. With labels: the losses, loss = mlm_loss + nsp_loss; with labels and no
        next_sentence_label (MLM-only data, RoBERTa's objective) loss = mlm_loss, and the pooler and NSP head
        do not run (they get no gradient)."""
        pk = packing(
            attention_mask,
            self.config.num_attention_heads,
            self.bert.embeddings.word_embeddings.weight.dtype,
            unpad=labels is not None,
        )
        x = self.encode(input_ids, token_type_ids, pk)  # (T, H)
        nsp_logits = None
        if labels is None or next_sentence_label is not None:
            pooled = torch.tanh(self.bert.pooler.dense(x.index_select(0, pk.cls_rows)))  # (B, H), the [CLS] tokens
            nsp_logits = self.cls.seq_relationship(pooled)  # (B, 2)
        if labels is None:
            return PretrainingOutput(prediction_logits=self.mlm_head(pk.pad(x)), seq_relationship_logits=nsp_logits)

        # Sparse MLM head: transform and project only the masked positions.
        packed_labels = pk.unpad(labels)
        selected = packed_labels != -100  # (T,)
        mlm_logits = self.mlm_head(x[selected]).float()  # (N, V)
        targets = packed_labels[selected]  # (N,)
        mlm_loss = F.cross_entropy(mlm_logits, targets)
        with torch.no_grad():
            mlm_correct = (mlm_logits.argmax(-1) == targets).sum()
        out = PretrainingOutput(
            loss=mlm_loss, mlm_loss=mlm_loss.detach(), mlm_correct=mlm_correct, mlm_count=selected.sum()
        )
        if next_sentence_label is not None:
            nsp_loss = F.cross_entropy(nsp_logits.float(), next_sentence_label)
            out.loss = mlm_loss + nsp_loss
            out.nsp_loss = nsp_loss.detach()
            with torch.no_grad():
                out.nsp_correct = (nsp_logits.argmax(-1) == next_sentence_label).sum()
            out.seq_relationship_logits = nsp_logits
        return out


def num_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in {id(p): p for p in model.parameters()}.values())
