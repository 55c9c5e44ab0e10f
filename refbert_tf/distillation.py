"""Task-specific distillation (TinyBERT, Jiao et al. 2020) of a teacher into a (RefBERT) student.

Losses, with student layer m mapped to teacher layer g(m) = m * L_T / L_S (Eq. 6) and a learned map W from the
student width to the teacher width (one matrix for embeddings and hidden states, as in TinyBERT's code):

* embedding loss (Eq. 10):   MSE(E_S W, E_T)
* hidden-state loss (Eq. 9):  sum_m MSE(H_S^m W, H_T^g(m))
* attention loss (Eq. 7-8):  sum_m (1/h) sum_heads MSE(A_S^m, A_T^g(m)), A = pre-softmax scores QK^T/sqrt(d)
* prediction loss (Eq. 11):  soft cross-entropy -softmax(z_T / t) . log_softmax(z_S / t) (temperature t);
  MSE(z_S, z_T) for regression (STS-B)
* query loss (dense retrieval only, in both stages):  mean (1 - cos(q_S, k_T)), the student's query against the
  input's own key in the teacher's space (``query_loss_weight``; *our reading* of how ReAugKD, Zhang et al. 2023,
  trains the student's projection into the teacher's space: an MSE on unit vectors, |q - k|^2 / 2 = 1 - cos)

MSEs average over real tokens only (padding excluded); attention MSEs over (real query, real key) pairs.
Every mean is over the *global* batch (:func:`refbert_tf.distribute.global_mean`): under a ``tf.distribute``
strategy each replica divides its local sum by the all-replica count, so the summed replica gradients equal the
single-device gradient of the same global batch.
Training runs in two stages (Sec. 3.3): ``"intermediate"`` (embedding + attention + hidden) then
``"prediction"``. With a pre-trained backbone as the teacher and unlabeled text, the intermediate stage alone is
TinyBERT's *general* distillation (Sec. 3.3), which gives task distillation a pre-trained student to start from
(:func:`refbert_tf.pipelines.general_distill`). Conventions follow ``keras.distillation.Distiller``: teacher frozen, ``.student`` reachable for
export, loss trackers ``student_loss``, ``distillation_loss``, ``total_loss``.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import keras
import tensorflow as tf

from refbert_tf.distribute import global_mean, global_sum
from refbert_tf.io_utils import atomic_path, load_artifact
from refbert_tf.models.reference_encoder import attention_logits
from refbert_tf.models.student import dummy_inputs, mean_over_tokens
from refbert_tf.resume import remove_checkpoints
from refbert_tf.training import optimizer_for, plan_steps, run_fit

STAGES = ("intermediate", "prediction")


def masked_mse(student, teacher, mask):
    """Mean squared error over the masked positions.

    Args:
        student, teacher: float [B, T, D] (or any [..., D] with a matching mask [...]).
        mask: 0/1 [B, T].

    Returns:
        scalar: sum over real positions of mean_D (s - t)^2, divided by the number of real positions (of the
        global batch under a distribution strategy).
    """
    mask = tf.cast(mask, student.dtype)
    per_position = tf.reduce_mean(tf.square(student - teacher), axis=-1)
    return global_mean(tf.reduce_sum(per_position * mask), tf.reduce_sum(mask))


def attention_mse(student_logits, teacher_logits, mask):
    """TinyBERT attention loss for one layer pair (Eq. 7-8), over real (query, key) token pairs.

    Args:
        student_logits, teacher_logits: pre-softmax scores [B, heads, T, T].
        mask: 0/1 [B, T].

    Returns:
        scalar mean squared difference over heads and real (query, key) pairs.
    """
    mask = tf.cast(mask, student_logits.dtype)
    pair = tf.expand_dims(tf.expand_dims(mask, 1), 3) * tf.expand_dims(tf.expand_dims(mask, 1), 2)  # [B,1,T,T]
    heads = tf.cast(tf.shape(student_logits)[1], student_logits.dtype)
    squared = tf.square(student_logits - teacher_logits) * pair
    return global_mean(tf.reduce_sum(squared), tf.reduce_sum(pair) * heads)


def soft_cross_entropy(student_logits, teacher_logits, temperature: float = 1.0):
    """Prediction-layer distillation (Eq. 11): mean over the batch of -softmax(z_T/t) . log_softmax(z_S/t)."""
    target = tf.nn.softmax(teacher_logits / temperature, axis=-1)
    per_example = -tf.reduce_sum(target * tf.nn.log_softmax(student_logits / temperature, axis=-1), -1)
    return global_mean(tf.reduce_sum(per_example), tf.shape(per_example)[0])


def logit_mse(student_logits, teacher_logits, temperature: float = 1.0):
    """Mean squared logit difference over the global batch and the outputs, mean (z_S - z_T)^2; ``temperature`` is
    ignored. The prediction loss of regression (STS-B), and for classification an alternative to the soft
    cross-entropy that Kim et al. 2021 ("Comparing Kullback-Leibler Divergence and Mean Squared Error Loss in
    Knowledge Distillation") compare it with."""
    squared = tf.square(student_logits - teacher_logits)
    return global_mean(tf.reduce_sum(squared), tf.size(squared))


PREDICTION_LOSSES = {"soft_ce": soft_cross_entropy, "mse": logit_mse}  # DistillConfig.prediction_loss


def query_cosine_loss(query, key):
    """Dense retrieval's query loss: mean over the global batch of 1 - cos(query, key).

    Args:
        query: float [B, D], the student's query; key: float [B, D], the input's teacher key (any norm).
    """
    cosine = tf.reduce_sum(tf.math.l2_normalize(query, -1) * tf.math.l2_normalize(key, -1), -1)
    return global_mean(tf.reduce_sum(1.0 - cosine), tf.shape(cosine)[0])


def layer_map(num_student_layers: int, num_teacher_layers: int) -> list[int]:
    """TinyBERT's uniform mapping g(m) = m * L_T / L_S for m = 1..L_S (1-based teacher layers), rounded up.

    E.g. 4 student layers on a 12-layer teacher: [3, 6, 9, 12]; on the 6-layer MiniLM: [2, 3, 5, 6].
    """
    return [math.ceil(m * num_teacher_layers / num_student_layers) for m in range(1, num_student_layers + 1)]


def check_layer_mapping(mapping, num_student_layers: int, num_teacher_layers: int) -> None:
    """Raise ValueError unless ``mapping`` gives one teacher layer in 1..``num_teacher_layers`` per student layer."""
    if len(mapping) != num_student_layers or not all(1 <= t <= num_teacher_layers for t in mapping):
        raise ValueError(
            f"layer_mapping {list(mapping)} must give a teacher layer in 1..{num_teacher_layers} for "
            f"each of the {num_student_layers} student blocks"
        )


def pruning_layer_map(num_student_layers: int, num_teacher_layers: int) -> list[int]:
    """The teacher blocks a pruned student copies and then learns: the first L_S - 1 and the last, e.g.
    [1, 2, 3, 6] for 4 student layers on the 6-layer MiniLM. The lower blocks keep their inputs' statistics (each
    copied block reads what it read in the teacher), and the last block is the one the fine-tuned classifier reads
    (``recipes/pruning_probe.py`` compares mappings before training; docs/distillation.md)."""
    if num_student_layers > num_teacher_layers:
        raise ValueError(
            f"a {num_student_layers}-layer student cannot be pruned from a {num_teacher_layers}-layer teacher"
        )
    return list(range(1, num_student_layers)) + [num_teacher_layers]


def is_backbone(teacher) -> bool:
    """True for a bare encoder (a keras-hub ``BertBackbone``: general distillation), False for a fine-tuned
    classifier that has ``.backbone`` (task distillation)."""
    return not hasattr(teacher, "backbone")


class TeacherFeatures:
    """Frozen teacher outputs needed by the losses, from a keras-hub ``BertTextClassifier`` or a bare
    ``BertBackbone`` (general distillation: no logits).

    ``__call__(inputs)`` -> dict ``logits`` [B, C] (None for a backbone), ``embeddings`` [B, T, D],
    ``hidden_states`` (L tensors [B, T, D]), ``attention_logits`` (L tensors [B, heads, T, T]).
    Attributes ``backbone`` (the encoder) and ``has_logits`` (False for a bare backbone) are resolved once here.
    """

    def __init__(self, teacher):
        backbone = teacher if is_backbone(teacher) else teacher.backbone
        self.teacher = teacher
        self.backbone = backbone
        self.has_logits = not is_backbone(teacher)
        self.num_layers = backbone.num_layers
        outputs = {
            "embeddings": backbone.get_layer("embeddings_layer_norm").output,
            "pooled": backbone.output["pooled_output"],
            "sequence": backbone.output["sequence_output"],
        }
        for i in range(self.num_layers):
            outputs[f"hidden_{i}"] = backbone.get_layer(f"transformer_layer_{i}").output
        self.model = keras.Model(backbone.input, outputs)
        self.model.trainable = False
        teacher.trainable = False

    def __call__(self, inputs):
        inputs = {k: inputs[k] for k in ("token_ids", "segment_ids", "padding_mask")}
        out = self.model(inputs, training=False)
        hidden = [out[f"hidden_{i}"] for i in range(self.num_layers)]
        layer_inputs = [out["embeddings"]] + hidden[:-1]
        attention = [
            attention_logits(self.model.get_layer(f"transformer_layer_{i}"), h) for i, h in enumerate(layer_inputs)
        ]
        logits = self.teacher.output_dense(out["pooled"]) if self.has_logits else None
        return {
            "logits": logits,
            "embeddings": out["embeddings"],
            "hidden_states": hidden,
            "attention_logits": attention,
            "keys": {  # the dense retrieval key spaces (refbert_tf.dense_retrieval.KEY_SPACES), not normalised
                "cls": out["sequence"][:, 0],
                "pooled": out["pooled"],
                "mean": mean_over_tokens(out["sequence"], inputs["padding_mask"]),
            },
        }


class Distiller(keras.Model):
    """Two-stage TinyBERT task distillation with a custom ``train_step``; works with ``model.fit``.

    Args:
        teacher: fine-tuned keras-hub ``BertTextClassifier`` (frozen here), or a pre-trained ``BertBackbone``
            for TinyBERT's *general* distillation (Sec. 3.3: the intermediate-stage losses on unlabeled text
            with the pre-trained teacher; only the ``"intermediate"`` stage, and batches without labels).
        student: :class:`~refbert_tf.models.student.RefBertStudent`.
        regression: True for STS-B (MSE prediction loss).
        temperature: softmax temperature t of the prediction loss.
        stage: ``"intermediate"`` or ``"prediction"`` (switch with :meth:`set_stage`, then compile again).
        layer_mapping: teacher layer (1-based) whose hidden states and attention scores student block m learns;
            None: TinyBERT's uniform :func:`layer_map`.
        prediction_loss: name of the classification prediction loss in :data:`PREDICTION_LOSSES`.
        key_space: dense retrieval: the teacher key space the student's query learns (the query loss is added in
            both stages when the student has a query head).
        query_loss_weight: weight of that loss.

    Inputs of ``fit``: ``(inputs, labels)`` with ``inputs`` the student's dict (``reference_index`` included for a
    RefBERT student). Labels only feed the ``student_loss`` metric (hard-label loss, not optimised: TinyBERT's
    task distillation uses the teacher alone).

    Raises:
        ValueError: for an unknown stage, the ``"prediction"`` stage with a backbone teacher (no logits), or a
            ``layer_mapping`` of the wrong length or out of range.
    """

    def __init__(
        self,
        teacher,
        student,
        regression: bool = False,
        temperature: float = 1.0,
        stage: str = "intermediate",
        layer_mapping: list[int] | None = None,
        prediction_loss: str = "soft_ce",
        key_space: str = "cls",
        query_loss_weight: float = 1.0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.key_space, self.query_loss_weight = key_space, float(query_loss_weight)
        if prediction_loss not in PREDICTION_LOSSES:
            raise ValueError(f"unknown prediction_loss {prediction_loss!r}; use one of {', '.join(PREDICTION_LOSSES)}")
        self.prediction_loss = PREDICTION_LOSSES[prediction_loss]
        self.teacher_features = TeacherFeatures(teacher)
        self.student = student
        self.regression = bool(regression)
        self.temperature = float(temperature)
        self.stage = None
        self.set_stage(stage)
        teacher_dim = self.teacher_features.backbone.hidden_dim
        self.fit_dense = keras.layers.Dense(teacher_dim, name="fit_dense")  # W: student width -> teacher width
        self.fit_dense.build((None, None, student.config_values["hidden_dim"]))
        self.mapping = list(layer_mapping or layer_map(len(student.blocks), self.teacher_features.num_layers))
        check_layer_mapping(self.mapping, len(student.blocks), self.teacher_features.num_layers)
        self.student_loss_tracker = keras.metrics.Mean(name="student_loss")
        self.distillation_loss_tracker = keras.metrics.Mean(name="distillation_loss")
        self.total_loss_tracker = keras.metrics.Mean(name="total_loss")
        # build now: the optimizer takes the variables that exist at the first fit, and BackupAndRestore
        # refuses unbuilt models
        self(dummy_inputs())

    def set_stage(self, stage: str):
        """Select ``"intermediate"`` or ``"prediction"`` losses."""
        if stage not in STAGES:
            raise ValueError(f"unknown distillation stage {stage!r}; use one of {STAGES}")
        if stage == "prediction" and not self.teacher_features.has_logits:
            raise ValueError(
                "a backbone teacher has no logits: general distillation has only the "
                "'intermediate' stage; distill from a fine-tuned classifier for 'prediction'"
            )
        self.stage = stage

    @property
    def metrics(self):
        trackers = [self.total_loss_tracker, self.distillation_loss_tracker]
        if self.teacher_features.has_logits:  # unlabeled text (general distillation) has no hard-label loss
            trackers.append(self.student_loss_tracker)
        return trackers

    def call(self, inputs, training=None):
        return self.student(inputs, training=training)

    def distillation_losses(self, student_out, teacher_out, mask):
        """Dict of the stage's loss terms (scalars) and their sum ``distillation_loss``."""
        if self.stage == "intermediate":
            terms = {
                "embedding": masked_mse(self.fit_dense(student_out["embeddings"]), teacher_out["embeddings"], mask)
            }
            hidden = attention = 0.0
            for m, t in enumerate(self.mapping):
                hidden += masked_mse(
                    self.fit_dense(student_out["hidden_states"][m]), teacher_out["hidden_states"][t - 1], mask
                )
                attention += attention_mse(
                    student_out["attention_logits"][m], teacher_out["attention_logits"][t - 1], mask
                )
            terms.update(hidden=hidden, attention=attention)
        elif self.regression:
            terms = {"prediction": logit_mse(student_out["logits"], teacher_out["logits"])}
        else:
            terms = {"prediction": self.prediction_loss(student_out["logits"], teacher_out["logits"], self.temperature)}
        if "query" in student_out:
            key = teacher_out["keys"][self.key_space]
            terms["query"] = self.query_loss_weight * query_cosine_loss(student_out["query"], key)
        terms["distillation_loss"] = tf.add_n(list(terms.values()))
        return terms

    def _hard_loss(self, labels, logits):
        """Loss against the gold labels (reported as ``student_loss``, not optimised)."""
        if self.regression:
            per_example = tf.square(tf.reshape(logits, [-1]) - tf.cast(tf.reshape(labels, [-1]), logits.dtype))
        else:
            per_example = tf.nn.sparse_softmax_cross_entropy_with_logits(
                labels=tf.cast(labels, tf.int32), logits=logits
            )
        return global_mean(tf.reduce_sum(per_example), tf.size(per_example))

    @property
    def distilled_variables(self) -> list:
        """The variables the distillation updates: the student's and the width map W's."""
        return self.student.trainable_variables + self.fit_dense.trainable_variables

    def compute_gradients(self, data):
        """Losses and gradients of one replica's share of a global batch (no update).

        Under a strategy, call it inside ``strategy.run``: each replica returns the gradient of its share of the
        global-batch loss, so their SUM (what the optimizer all-reduces) is the single-device gradient.

        Args:
            data: ``(inputs, labels)``, or the ``inputs`` dict alone (unlabeled text: general distillation).

        Returns:
            ``(losses, grads)``: ``losses`` dict of scalars (``distillation_loss``, its terms and, given labels,
            the hard-label ``student_loss``, each the replica's share), ``grads`` a list aligned with
            :attr:`distilled_variables` (None for unused variables).
        """
        inputs, labels = (data, None) if isinstance(data, dict) else data
        teacher_out = self.teacher_features(inputs)
        variables = self.distilled_variables
        with tf.GradientTape() as tape:
            student_out = self.student.call_with_features(inputs, training=True)
            losses = self.distillation_losses(student_out, teacher_out, inputs["padding_mask"])
        grads = tape.gradient(losses["distillation_loss"], variables)
        if labels is not None:
            losses["student_loss"] = self._hard_loss(labels, student_out["logits"])
        return losses, grads

    def train_step(self, data):
        losses, grads = self.compute_gradients(data)
        self.optimizer.apply_gradients([(g, v) for g, v in zip(grads, self.distilled_variables) if g is not None])
        # each replica holds its share of the global-batch loss: track the all-replica sum, the global loss
        total = global_sum(losses["distillation_loss"])
        self.total_loss_tracker.update_state(total)
        self.distillation_loss_tracker.update_state(total)
        if "student_loss" in losses:
            self.student_loss_tracker.update_state(global_sum(losses["student_loss"]))
        return {m.name: m.result() for m in self.metrics}


def run_stages(distiller: Distiller, dataset, num_examples: int, config, out_dir, strategy, verbose="auto") -> dict:
    """Both TinyBERT stages, intermediate then prediction, each resumable and each skipped when already finished.

    A finished stage leaves ``out_dir/stage_<stage>.weights.h5`` (written atomically, before the stage's resume
    checkpoints are deleted); a re-run loads it instead of training again and says so. Inside a stage,
    ``model.fit`` resumes from its last checkpoint interval (:func:`~refbert_tf.training.run_fit`,
    ``out_dir/backup_<stage>``).

    Args:
        distiller: the :class:`Distiller` (its optimizer is rebuilt for each stage).
        dataset: repeated, shuffled ``(inputs, labels)`` batches.
        num_examples: training rows per pass (epochs count passes over them).
        config: a ``DistillConfig`` (``intermediate_epochs``, ``prediction_epochs``, batch and schedule).
        out_dir: the run directory.
        strategy: the ``tf.distribute.Strategy`` the distiller was built under.
        verbose: ``fit`` verbosity.

    Returns:
        ``{"<stage>_seconds": wall time}`` for the stages trained in this call.

    Raises:
        CorruptArtifactError: a stage file or resume checkpoint that cannot be read (the message names it).
    """
    timings = {}
    for stage, epochs in (("intermediate", config.intermediate_epochs), ("prediction", config.prediction_epochs)):
        done = Path(out_dir) / f"stage_{stage}.weights.h5"
        backup = Path(out_dir) / f"backup_{stage}"
        if done.is_file():  # finished in an earlier, interrupted run
            load_artifact(done, distiller.load_weights, f"delete it to train the {stage} stage again")
            print(f"{stage} stage: finished by an earlier run, its weights loaded from {done}")
            remove_checkpoints(backup)
            continue
        start = time.perf_counter()
        distiller.set_stage(stage)
        intervals, steps = plan_steps(num_examples, config.batch_size, epochs, config.backup_every)
        with strategy.scope():
            distiller.compile(optimizer=optimizer_for(config, intervals * steps))
            if epochs > 0:
                run_fit(distiller, dataset, intervals, steps, backup, verbose=verbose, delete_checkpoint=False)
        with atomic_path(done) as tmp:
            distiller.save_weights(tmp)
        remove_checkpoints(backup)
        timings[f"{stage}_seconds"] = round(time.perf_counter() - start, 1)
    return timings
