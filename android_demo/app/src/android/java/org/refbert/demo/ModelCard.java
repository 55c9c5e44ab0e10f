package org.refbert.demo;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Collections;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

import org.json.JSONArray;
import org.json.JSONException;
import org.json.JSONObject;

/**
 * The model card written beside each {@code .tflite} file by {@code recipes/export_tflite.py}
 * ({@code refbert_tf.export.model_card}): task, labels, tokenizer settings, vocabulary file and the model's tensors.
 *
 * <p>Uses only {@code org.json}, which Android provides. Lives in {@code src/android/java}, not
 * {@code src/main/java}, because {@code run_java_tests.sh} compiles {@code src/main/java} with a plain JDK, which
 * has no {@code org.json}.
 */
public final class ModelCard {

    /** The GLUE regression task: one output, a similarity score (0 to 5), no labels. */
    public static final String TASK_STSB = "stsb";

    /** One input or output tensor: {@code name} is the signature key, {@code tensor} the flatbuffer tensor name. */
    public static final class TensorSpec {
        public final String name;
        public final String tensor;
        public final String dtype;
        /** -1 marks a dynamic dimension (the sequence length of the inputs). */
        public final int[] shape;

        TensorSpec(String name, String tensor, String dtype, int[] shape) {
            this.name = name;
            this.tensor = tensor;
            this.dtype = dtype;
            this.shape = shape;
        }
    }

    public final String task;
    /** Class names in class-id order; empty for STS-B. */
    public final List<String> labels;
    /** Longest sequence (special tokens included) the model was exported for. */
    public final int maxSeqLen;
    /** True for uncased vocabularies (lower-case and strip accents before WordPiece). */
    public final boolean lowercase;
    /** File name of the vocabulary beside the model ({@code vocab-<sha256[:12]>.txt}), or null if the card has none. */
    public final String vocabFile;
    /** SHA-256 (hex) of the vocabulary file's bytes, or null. */
    public final String vocabSha256;
    public final List<TensorSpec> inputs;
    public final List<TensorSpec> outputs;
    /** Quantization variant ({@code float32}, {@code dynamic_int8}, {@code full_int8}, {@code float16}), or null. */
    public final String variant;
    /** Student kind ({@code refbert}, {@code vanilla}...), or null. */
    public final String model;
    /** GLUE dev metrics (percent) measured through the LiteRT interpreter at export; empty if not measured. */
    public final Map<String, Double> devMetrics;

    private ModelCard(JSONObject card) throws JSONException {
        task = requiredString(card, "task");
        labels = Collections.unmodifiableList(stringList(card, "labels"));
        if (card.isNull("max_seq_len")) {
            throw new IllegalArgumentException("model card has no max_seq_len");
        }
        maxSeqLen = card.getInt("max_seq_len");
        if (maxSeqLen < 3) {
            throw new IllegalArgumentException("model card max_seq_len " + maxSeqLen + " is below 3");
        }
        lowercase = card.isNull("lowercase") || card.getBoolean("lowercase");
        vocabFile = optString(card, "vocab_file");
        vocabSha256 = optString(card, "vocab_sha256");
        inputs = Collections.unmodifiableList(tensorList(card, "inputs"));
        outputs = Collections.unmodifiableList(tensorList(card, "outputs"));
        variant = optString(card, "variant");
        model = optString(card, "model");
        devMetrics = Collections.unmodifiableMap(metrics(card, "dev_metrics"));
    }

    /**
     * Parses a card.
     *
     * @throws IllegalArgumentException if the text is not JSON or lacks a required field (task, max_seq_len)
     */
    public static ModelCard parse(String json) {
        try {
            return new ModelCard(new JSONObject(json));
        } catch (JSONException e) {
            throw new IllegalArgumentException("invalid model card: " + e.getMessage(), e);
        }
    }

    /** Reads and parses a UTF-8 card from a stream, which is left open. */
    public static ModelCard fromStream(InputStream in) throws IOException {
        ByteArrayOutputStream bytes = new ByteArrayOutputStream();
        byte[] buffer = new byte[8192];
        int n;
        while ((n = in.read(buffer)) != -1) {
            bytes.write(buffer, 0, n);
        }
        return parse(new String(bytes.toByteArray(), StandardCharsets.UTF_8));
    }

    /** True for STS-B: the model returns one score rather than class logits. */
    public boolean isRegression() {
        return TASK_STSB.equals(task);
    }

    /** True for sentence-pair tasks (every GLUE task but SST-2 and CoLA). */
    public boolean isPairTask() {
        return !("sst2".equals(task) || "cola".equals(task));
    }

    /** The input or output with this signature key, or null. */
    public TensorSpec input(String name) {
        return find(inputs, name);
    }

    public TensorSpec output(String name) {
        return find(outputs, name);
    }

    /**
     * Width of the output {@code name}: its last static dimension from the card, else one per label (1 for
     * STS-B).
     */
    public int outputWidth(String name) {
        TensorSpec spec = output(name);
        if (spec != null && spec.shape.length > 0 && spec.shape[spec.shape.length - 1] > 0) {
            return spec.shape[spec.shape.length - 1];
        }
        return isRegression() ? 1 : labels.size();
    }

    private static TensorSpec find(List<TensorSpec> specs, String name) {
        for (TensorSpec spec : specs) {
            if (spec.name.equals(name)) {
                return spec;
            }
        }
        return null;
    }

    /** A string field, or null when absent or JSON null (Android's optString would return "null"). */
    private static String optString(JSONObject obj, String key) throws JSONException {
        return obj.isNull(key) ? null : obj.getString(key);
    }

    private static String requiredString(JSONObject obj, String key) throws JSONException {
        String value = optString(obj, key);
        if (value == null || value.isEmpty()) {
            throw new IllegalArgumentException("model card has no " + key);
        }
        return value;
    }

    private static List<String> stringList(JSONObject obj, String key) throws JSONException {
        List<String> out = new ArrayList<>();
        if (obj.isNull(key)) {
            return out;
        }
        JSONArray array = obj.getJSONArray(key);
        for (int i = 0; i < array.length(); i++) {
            out.add(array.getString(i));
        }
        return out;
    }

    private static List<TensorSpec> tensorList(JSONObject obj, String key) throws JSONException {
        List<TensorSpec> out = new ArrayList<>();
        if (obj.isNull(key)) {
            return out;
        }
        JSONArray array = obj.getJSONArray(key);
        for (int i = 0; i < array.length(); i++) {
            JSONObject t = array.getJSONObject(i);
            int[] shape = new int[0];
            if (!t.isNull("shape")) {
                JSONArray dims = t.getJSONArray("shape");
                shape = new int[dims.length()];
                for (int d = 0; d < shape.length; d++) {
                    shape[d] = dims.getInt(d);
                }
            }
            out.add(new TensorSpec(requiredString(t, "name"), optString(t, "tensor"), optString(t, "dtype"), shape));
        }
        return out;
    }

    private static Map<String, Double> metrics(JSONObject obj, String key) throws JSONException {
        Map<String, Double> out = new LinkedHashMap<>();
        if (obj.isNull(key)) {
            return out;
        }
        JSONObject metrics = obj.getJSONObject(key);
        Iterator<String> names = metrics.keys();
        while (names.hasNext()) {
            String name = names.next();
            Object value = metrics.get(name);
            if (value instanceof Number) {
                out.put(name, ((Number) value).doubleValue());
            }
        }
        return out;
    }
}
