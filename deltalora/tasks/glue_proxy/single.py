"""GLUE proxies of the single-sentence tasks: SST-2 (sentiment) and CoLA (acceptability)."""

from __future__ import annotations

import random

from .words import SST2_TEMPLATES, Row, Words, cap, choose_label, with_article

# ---------------------------------------------------------------------------------------------------
# SST-2: sentiment with negation and contrast
# ---------------------------------------------------------------------------------------------------


def sst2(rng: random.Random, part: str) -> Row:
    w = Words("sst2", part, rng)
    label = choose_label(rng, (0.45, 0.55))  # real SST-2 validation is about 51% positive

    def adj(polarity: int) -> str:
        return w.pick("pos_adj" if polarity == 1 else "neg_adj")

    kind = rng.random()
    if kind < 0.55:  # plain statement
        a = adj(label)
        tpl = rng.choice(SST2_TEMPLATES["simple"][part])
        text = tpl.format(n=w.pick("noun"), adj=a, a_adj=with_article(a))
    elif kind < 0.75:  # negated adjective of the opposite polarity
        text = rng.choice(SST2_TEMPLATES["negated"][part]).format(n=w.pick("noun"), adj=adj(1 - label))
    else:  # contrast: the clause after "but"/the main clause decides
        n1, n2 = w.two("noun")
        first = adj(1 - label)
        if kind < 0.95:
            second_tpl = "{adj2}"
            second = adj(label)
        else:  # the deciding clause is itself negated
            second_tpl = "not {adj2}"
            second = adj(1 - label)
        tpl = rng.choice(SST2_TEMPLATES["contrast"][part]).replace("{adj2}", second_tpl)
        text = tpl.format(n1=n1, n2=n2, adj1=first, adj2=second)
    return {"sentence": text, "label": label}


# ---------------------------------------------------------------------------------------------------
# CoLA: acceptability; errors are agreement (with attractors), verb form, word order, determiner
# ---------------------------------------------------------------------------------------------------


def cola(rng: random.Random, part: str) -> Row:
    w = Words("cola", part, rng)
    label = choose_label(rng, (0.4, 0.6))  # real CoLA is about 70% acceptable
    (sg, pl) = w.pick("subject")
    base, s3, past, pp, objs = w.pick("verb")
    obj = rng.choice(objs)
    plural = rng.random() < 0.5
    subj = pl if plural else sg
    att_sg, att_pl = w.pick("attractor")
    # an attractor noun of the opposite number between subject and verb: "the key to the cabinets"
    use_attractor = rng.random() < 0.35
    attractor = f" near the {att_sg if plural else att_pl}" if use_attractor else ""
    np_subj = f"the {subj}{attractor}"

    frames = ["present", "past", "perfect", "future", "negated"]
    frame = rng.choice(frames)
    if label == 1:
        if frame == "present":
            verb = base if plural else s3
        elif frame == "past":
            verb = past
        elif frame == "perfect":
            verb = ("have " if plural else "has ") + pp
        elif frame == "future":
            verb = "will " + base
        else:
            verb = "did not " + base
        return {"sentence": cap(f"{np_subj} {verb} the {obj}."), "label": 1}

    error = rng.choice(["agreement", "form", "order", "order", "scramble", "determiner", "missing"])
    if error == "agreement":  # number mismatch, often across an attractor
        if frame == "perfect":
            verb = ("has " if plural else "have ") + pp
        else:
            verb = s3 if plural else base
        text = f"{np_subj} {verb} the {obj}."
    elif error == "form":  # wrong verb form after an auxiliary, or a bare participle
        aux = rng.choice(["perfect", "did", "will", "bare"])
        if aux == "perfect":
            verb = ("have " if plural else "has ") + past
        elif aux == "did":
            verb = "did not " + past
        elif aux == "will":
            verb = "will " + (past if rng.random() < 0.5 else s3)
        else:
            verb = pp
        text = f"{np_subj} {verb} the {obj}."
    elif error in ("order", "scramble"):  # adjacent words swapped, or the words shuffled
        verb = past if frame != "present" else (base if plural else s3)
        tokens = f"{np_subj} {verb} the {obj}".split()
        original = list(tokens)
        # a shuffle must not start with "the"/"near": "the cup broke the boy" would be grammatical
        while tokens == original or (error == "scramble" and tokens[0] in ("the", "near")):
            if error == "order":
                i = rng.randrange(len(tokens) - 1)
                tokens[i], tokens[i + 1] = tokens[i + 1], tokens[i]
            else:
                rng.shuffle(tokens)
        text = " ".join(tokens) + "."
    elif error == "missing":  # the verb or the subject is left out
        verb = past
        text = f"{np_subj} the {obj}." if rng.random() < 0.5 else f"{verb} the {obj}."
    else:  # determiner: missing article on a singular count noun, or "a" with a plural
        verb = past
        if rng.random() < 0.5:
            text = f"{np_subj} {verb} {obj}."
        else:
            text = f"a {pl}{attractor} {verb} the {obj}."
    return {"sentence": cap(text), "label": 0}
