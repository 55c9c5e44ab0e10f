package org.refbert.demo;

import android.content.res.AssetFileDescriptor;
import android.content.res.AssetManager;

import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.Closeable;
import java.io.FileInputStream;
import java.io.FileNotFoundException;
import java.io.IOException;
import java.io.InputStream;
import java.nio.MappedByteBuffer;
import java.nio.channels.FileChannel;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.Arrays;
import java.util.HashMap;
import java.util.Locale;
import java.util.Map;

import org.tensorflow.lite.Interpreter;

/**
 * Text classification with an exported student: {@code model.tflite}, its card {@code model.json} and the vocabulary
 * the card names ({@code vocab_file}), all read from the app's assets.
 *
 * <p>The model's {@code serve} signature takes {@code token_ids}, {@code segment_ids} and {@code padding_mask},
 * int32 [1, T] with T at most the card's {@code max_seq_len} (the sequence dimension is dynamic), and returns
 * {@code logits}, float32 [1, num_classes] ([1, 1], a score, for STS-B). Inputs are passed unpadded, T = the
 * encoded length: the interpreter resizes an input tensor to the shape of the Java array given for it.
 *
 * <p>Not thread-safe in the interpreter's sense, so {@link #classify} and {@link #close} are synchronized; call
 * them off the UI thread.
 */
public final class TextClassifier implements Closeable {

    public static final String MODEL_ASSET = "model.tflite";
    public static final String CARD_ASSET = "model.json";
    public static final String SIGNATURE = "serve";
    public static final String TOKEN_IDS = "token_ids";
    public static final String SEGMENT_IDS = "segment_ids";
    public static final String PADDING_MASK = "padding_mask";
    public static final String LOGITS = "logits";

    private static final String HOW_TO = "copy the exported model, its card and vocabulary into"
        + " app/src/main/assets/ as described in android_demo/README.md";

    /** One prediction. */
    public static final class Result {
        /** True for STS-B: {@link #score} holds the prediction, there is no label. */
        public final boolean regression;
        /** Predicted class name (regression: null). */
        public final String label;
        /** Softmax probability of the predicted class (regression: NaN). */
        public final float probability;
        /** Softmax probabilities of all classes, in the card's label order (regression: empty). */
        public final float[] probabilities;
        /** The STS-B similarity score (classification: NaN). */
        public final float score;
        /** Raw model outputs. */
        public final float[] logits;
        /** Wall time of the interpreter call alone, in milliseconds. */
        public final double latencyMs;
        /** Sequence length fed to the model (special tokens included). */
        public final int numTokens;
        /** Whether the text(s) were cut to the card's max_seq_len. */
        public final boolean truncated;

        Result(boolean regression, String label, float probability, float[] probabilities, float score,
               float[] logits, double latencyMs, int numTokens, boolean truncated) {
            this.regression = regression;
            this.label = label;
            this.probability = probability;
            this.probabilities = probabilities;
            this.score = score;
            this.logits = logits;
            this.latencyMs = latencyMs;
            this.numTokens = numTokens;
            this.truncated = truncated;
        }

        /** "positive (p=0.97) — 3.1 ms", or "score 3.42 — 3.1 ms" for STS-B. */
        public String summary() {
            if (regression) {
                return String.format(Locale.US, "score %.2f \u2014 %.1f ms", score, latencyMs);
            }
            return String.format(Locale.US, "%s (p=%.2f) \u2014 %.1f ms", label, probability, latencyMs);
        }
    }

    private final ModelCard card;
    private final WordPieceTokenizer tokenizer;
    private final MappedByteBuffer modelBuffer; // must outlive the interpreter
    private final Interpreter interpreter;
    private final int numOutputs;
    private boolean closed;

    private TextClassifier(ModelCard card, WordPieceTokenizer tokenizer, MappedByteBuffer modelBuffer,
                           Interpreter interpreter) {
        this.card = card;
        this.tokenizer = tokenizer;
        this.modelBuffer = modelBuffer;
        this.interpreter = interpreter;
        this.numOutputs = card.outputWidth(LOGITS);
    }

    /**
     * Loads {@code model.tflite}, {@code model.json} and the card's vocabulary from the assets.
     *
     * @param assets the app's assets
     * @param numThreads interpreter CPU threads (-1: the runtime's default)
     * @throws FileNotFoundException if an asset is missing
     * @throws IOException if an asset cannot be read or mapped, or the vocabulary does not match the card
     * @throws IllegalArgumentException if the card is invalid, lacks {@code vocab_file}, or does not match the model
     */
    public static TextClassifier fromAssets(AssetManager assets, int numThreads) throws IOException {
        requireAsset(assets, CARD_ASSET);
        requireAsset(assets, MODEL_ASSET);
        ModelCard card;
        try (InputStream in = assets.open(CARD_ASSET)) {
            card = ModelCard.fromStream(in);
        }
        if (card.vocabFile == null || card.vocabFile.isEmpty()) {
            throw new IllegalArgumentException(CARD_ASSET + " has no vocab_file: re-export the model with"
                + " python recipes/export_tflite.py, which writes vocab-<sha256>.txt beside it and names it in the card");
        }
        if (!card.isRegression() && card.labels.isEmpty()) {
            throw new IllegalArgumentException(CARD_ASSET + " has no labels for task " + card.task);
        }
        requireAsset(assets, card.vocabFile);
        byte[] vocabBytes;
        try (InputStream in = assets.open(card.vocabFile)) {
            vocabBytes = readAll(in);
        }
        if (card.vocabSha256 != null) {
            String actual = sha256Hex(vocabBytes);
            if (!actual.equalsIgnoreCase(card.vocabSha256)) {
                throw new IOException("vocabulary asset " + card.vocabFile + " has SHA-256 " + actual
                    + ", but " + CARD_ASSET + " expects " + card.vocabSha256);
            }
        }
        WordPieceTokenizer tokenizer =
            WordPieceTokenizer.fromStream(new ByteArrayInputStream(vocabBytes), card.lowercase);

        MappedByteBuffer buffer = mapAsset(assets, MODEL_ASSET);
        Interpreter.Options options = new Interpreter.Options();
        if (numThreads > 0) {
            options.setNumThreads(numThreads);
        }
        Interpreter interpreter = new Interpreter(buffer, options);
        try {
            checkSignature(interpreter, card);
            return new TextClassifier(card, tokenizer, buffer, interpreter);
        } catch (RuntimeException e) {
            interpreter.close();
            throw e;
        }
    }

    public ModelCard card() {
        return card;
    }

    public WordPieceTokenizer tokenizer() {
        return tokenizer;
    }

    /**
     * Classifies a text, or a pair for sentence-pair tasks ({@link ModelCard#isPairTask()}).
     *
     * @param textA the text (first sentence of a pair)
     * @param textB the second sentence; ignored for single-text tasks, null means empty for pair tasks
     * @throws IllegalStateException after {@link #close()}
     * @throws IllegalArgumentException if the interpreter rejects the inputs
     */
    public synchronized Result classify(String textA, String textB) {
        if (closed) {
            throw new IllegalStateException("the classifier is closed");
        }
        String second = card.isPairTask() ? (textB == null ? "" : textB) : null;
        WordPieceTokenizer.Encoding encoding = tokenizer.encode(textA, second, card.maxSeqLen);
        int length = encoding.tokenIds.length;

        // int32 [1, T] each; the interpreter resizes the inputs to these shapes before running.
        Map<String, Object> inputs = new HashMap<>();
        inputs.put(TOKEN_IDS, new int[][] {encoding.tokenIds});
        inputs.put(SEGMENT_IDS, new int[][] {encoding.segmentIds});
        inputs.put(PADDING_MASK, new int[][] {encoding.paddingMask(length)});
        float[][] logits = new float[1][numOutputs];
        Map<String, Object> outputs = new HashMap<>();
        outputs.put(LOGITS, logits);

        long start = System.nanoTime();
        interpreter.runSignature(inputs, outputs, SIGNATURE);
        double latencyMs = (System.nanoTime() - start) / 1e6;

        float[] raw = logits[0];
        if (card.isRegression()) {
            return new Result(true, null, Float.NaN, new float[0], raw[0], raw, latencyMs, length,
                encoding.truncated);
        }
        float[] probabilities = softmax(raw);
        int best = 0;
        for (int i = 1; i < probabilities.length; i++) {
            if (probabilities[i] > probabilities[best]) {
                best = i;
            }
        }
        String label = best < card.labels.size() ? card.labels.get(best) : "class " + best;
        return new Result(false, label, probabilities[best], probabilities, Float.NaN, raw, latencyMs, length,
            encoding.truncated);
    }

    @Override
    public synchronized void close() {
        if (!closed) {
            closed = true;
            interpreter.close();
        }
    }

    /** The mapped model file (kept referenced for the interpreter's lifetime). */
    MappedByteBuffer modelBuffer() {
        return modelBuffer;
    }

    /** Numerically stable softmax. */
    static float[] softmax(float[] logits) {
        float max = Float.NEGATIVE_INFINITY;
        for (float v : logits) {
            max = Math.max(max, v);
        }
        double sum = 0;
        double[] exp = new double[logits.length];
        for (int i = 0; i < logits.length; i++) {
            exp[i] = Math.exp(logits[i] - max);
            sum += exp[i];
        }
        float[] out = new float[logits.length];
        for (int i = 0; i < logits.length; i++) {
            out[i] = (float) (exp[i] / sum);
        }
        return out;
    }

    private static void checkSignature(Interpreter interpreter, ModelCard card) {
        String[] keys = interpreter.getSignatureKeys();
        if (!Arrays.asList(keys).contains(SIGNATURE)) {
            throw new IllegalArgumentException(MODEL_ASSET + " has no '" + SIGNATURE + "' signature (it has "
                + Arrays.toString(keys) + "): export it with python recipes/export_tflite.py");
        }
        String[] inputNames = interpreter.getSignatureInputs(SIGNATURE);
        for (String name : new String[] {TOKEN_IDS, SEGMENT_IDS, PADDING_MASK}) {
            if (!Arrays.asList(inputNames).contains(name)) {
                throw new IllegalArgumentException("signature '" + SIGNATURE + "' of " + MODEL_ASSET
                    + " lacks input " + name + " (inputs: " + Arrays.toString(inputNames) + ")");
            }
        }
        String[] outputNames = interpreter.getSignatureOutputs(SIGNATURE);
        if (!Arrays.asList(outputNames).contains(LOGITS)) {
            throw new IllegalArgumentException("signature '" + SIGNATURE + "' of " + MODEL_ASSET
                + " lacks output " + LOGITS + " (outputs: " + Arrays.toString(outputNames) + ")");
        }
        int width = card.outputWidth(LOGITS);
        int expected = card.isRegression() ? 1 : card.labels.size();
        if (width != expected) {
            throw new IllegalArgumentException(CARD_ASSET + ": output " + LOGITS + " has " + width
                + " values but task " + card.task + " needs " + expected);
        }
    }

    private static void requireAsset(AssetManager assets, String name) throws IOException {
        String[] names = assets.list("");
        if (names == null || !Arrays.asList(names).contains(name)) {
            throw new FileNotFoundException("asset " + name + " is missing: " + HOW_TO);
        }
    }

    /** Memory-maps an uncompressed asset (build.gradle: androidResources.noCompress 'tflite'). */
    private static MappedByteBuffer mapAsset(AssetManager assets, String name) throws IOException {
        AssetFileDescriptor fd;
        try {
            fd = assets.openFd(name);
        } catch (FileNotFoundException e) {
            // openFd also fails this way for an asset stored compressed in the APK
            throw new IOException("cannot memory-map asset " + name + " (is it stored compressed? build.gradle must"
                + " keep .tflite uncompressed): " + e.getMessage(), e);
        }
        try (AssetFileDescriptor descriptor = fd;
             FileInputStream in = new FileInputStream(descriptor.getFileDescriptor());
             FileChannel channel = in.getChannel()) {
            // the mapping stays valid after the channel is closed
            return channel.map(FileChannel.MapMode.READ_ONLY, descriptor.getStartOffset(),
                descriptor.getDeclaredLength());
        }
    }

    private static byte[] readAll(InputStream in) throws IOException {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        byte[] buffer = new byte[16384];
        int n;
        while ((n = in.read(buffer)) != -1) {
            out.write(buffer, 0, n);
        }
        return out.toByteArray();
    }

    private static String sha256Hex(byte[] data) {
        MessageDigest digest;
        try {
            digest = MessageDigest.getInstance("SHA-256");
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException("SHA-256 unavailable", e);
        }
        StringBuilder hex = new StringBuilder(64);
        for (byte b : digest.digest(data)) {
            hex.append(String.format(Locale.US, "%02x", b & 0xff));
        }
        return hex.toString();
    }
}
