package org.refbert.demo;

import java.io.BufferedReader;
import java.io.File;
import java.io.FileInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.text.Normalizer;
import java.util.ArrayList;
import java.util.Collections;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * BERT WordPiece tokenizer and pair packer in plain Java (no Android classes), id-for-id identical to the Python
 * package's {@code refbert_tf.tokenization.BertWordPieceTokenizer} (itself identical to Hugging Face's BERT
 * tokenizer). Checked against golden vectors written by {@code refbert_tf.golden}.
 *
 * <p>Pipeline: (1) clean the text: tab, newline, carriage return and Unicode separators (Zs, Zl, Zp) become
 * spaces; control, format, private-use and surrogate code points and U+FFFD are dropped. For uncased
 * checkpoints also NFD, drop non-spacing marks (Mn), lower-case code point by code point (so no final-sigma
 * rule). (2) Split on spaces; every punctuation character (Unicode P* or an ASCII symbol) and CJK ideograph is a
 * word of its own. (3) WordPiece: greedy longest match with the {@code ##} continuation prefix; a word longer than
 * 100 code points, or one that cannot be fully matched, becomes {@code [UNK]}. (4) Packing
 * {@code [CLS] a [SEP]} or {@code [CLS] a [SEP] b [SEP]} with segment ids 0/1 and Hugging Face's
 * {@code longest_first} truncation. An empty text (or one that normalizes to nothing) contributes no tokens:
 * {@code encode("")} is {@code [CLS] [SEP]}.
 *
 * <p>Instances are immutable and thread-safe.
 */
public final class WordPieceTokenizer {

    /** BERT's {@code max_input_chars_per_word}: longer words become {@code [UNK]}. */
    public static final int MAX_CHARS_PER_WORD = 100;
    /** Continuation prefix of non-initial word pieces. */
    public static final String SUFFIX_INDICATOR = "##";

    private static final int[][] CJK_RANGES = {
        {0x4E00, 0x9FFF}, {0x3400, 0x4DBF}, {0x20000, 0x2A6DF}, {0x2A700, 0x2B73F}, {0x2B740, 0x2B81F},
        {0x2B820, 0x2CEAF}, {0xF900, 0xFAFF}, {0x2F800, 0x2FA1F},
    };

    private final List<String> vocab;
    private final Map<String, Integer> index;
    private final boolean lowercase;
    private final int maxTokenChars;
    private final int padId;
    private final int unkId;
    private final int clsId;
    private final int sepId;

    /** Token ids and segment ids of one packed, unpadded sequence. */
    public static final class Encoding {
        /** {@code [CLS] a [SEP] (b [SEP])} as vocabulary ids; length at most the requested max length. */
        public final int[] tokenIds;
        /** 0 for {@code [CLS]}, text a and its {@code [SEP]}; 1 for text b and the final {@code [SEP]}. */
        public final int[] segmentIds;
        /** Whether truncation removed tokens. */
        public final boolean truncated;

        Encoding(int[] tokenIds, int[] segmentIds, boolean truncated) {
            this.tokenIds = tokenIds;
            this.segmentIds = segmentIds;
            this.truncated = truncated;
        }

        /** Token ids right-padded with {@code padId} to {@code length} (the model's fixed input length). */
        public int[] paddedTokenIds(int length, int padId) {
            return pad(tokenIds, length, padId);
        }

        /** Segment ids right-padded with 0 to {@code length}. */
        public int[] paddedSegmentIds(int length) {
            return pad(segmentIds, length, 0);
        }

        /** 1 for real tokens, 0 for padding, of length {@code length}. */
        public int[] paddingMask(int length) {
            checkLength(length);
            int[] mask = new int[length];
            for (int i = 0; i < tokenIds.length; i++) {
                mask[i] = 1;
            }
            return mask;
        }

        private int[] pad(int[] values, int length, int fill) {
            checkLength(length);
            int[] out = new int[length];
            java.util.Arrays.fill(out, fill);
            System.arraycopy(values, 0, out, 0, values.length);
            return out;
        }

        private void checkLength(int length) {
            if (length < tokenIds.length) {
                throw new IllegalArgumentException(
                    "padded length " + length + " is shorter than the sequence (" + tokenIds.length + " tokens)");
            }
        }
    }

    /**
     * @param vocab tokens in id order (the lines of {@code vocab.txt})
     * @param lowercase true for uncased checkpoints (lower-case and strip accents)
     * @throws IllegalArgumentException if the vocabulary is empty or lacks [PAD], [UNK], [CLS] or [SEP]
     */
    public WordPieceTokenizer(List<String> vocab, boolean lowercase) {
        if (vocab.isEmpty()) {
            throw new IllegalArgumentException("empty vocabulary");
        }
        this.vocab = Collections.unmodifiableList(new ArrayList<>(vocab));
        this.lowercase = lowercase;
        this.index = new HashMap<>(vocab.size() * 2);
        int longest = 0;
        for (int i = 0; i < vocab.size(); i++) {
            String token = vocab.get(i);
            index.put(token, i); // the last duplicate wins, as in the Python tokenizer's dict
            longest = Math.max(longest, token.length());
        }
        this.maxTokenChars = longest;
        List<String> missing = new ArrayList<>();
        for (String special : new String[] {"[PAD]", "[UNK]", "[CLS]", "[SEP]"}) {
            if (!index.containsKey(special)) {
                missing.add(special);
            }
        }
        if (!missing.isEmpty()) {
            throw new IllegalArgumentException("vocabulary lacks special token(s) " + missing);
        }
        this.padId = index.get("[PAD]");
        this.unkId = index.get("[UNK]");
        this.clsId = index.get("[CLS]");
        this.sepId = index.get("[SEP]");
    }

    /** Reads {@code vocab.txt} from a file; see {@link #readVocab(InputStream)}. */
    public static WordPieceTokenizer fromFile(File vocabFile, boolean lowercase) throws IOException {
        try (InputStream in = new FileInputStream(vocabFile)) {
            return new WordPieceTokenizer(readVocab(in), lowercase);
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException(vocabFile + ": " + e.getMessage(), e);
        }
    }

    /** Reads {@code vocab.txt} from a stream (e.g. an Android asset), which is left open. */
    public static WordPieceTokenizer fromStream(InputStream vocabStream, boolean lowercase) throws IOException {
        return new WordPieceTokenizer(readVocab(vocabStream), lowercase);
    }

    /**
     * Reads a WordPiece vocabulary: UTF-8, one token per line (\n, \r\n or \r), id = line number - 1; a final
     * empty line is ignored. The stream is not closed.
     */
    public static List<String> readVocab(InputStream in) throws IOException {
        BufferedReader reader = new BufferedReader(new InputStreamReader(in, StandardCharsets.UTF_8));
        List<String> tokens = new ArrayList<>();
        String line;
        while ((line = reader.readLine()) != null) {
            tokens.add(line);
        }
        if (!tokens.isEmpty() && tokens.get(tokens.size() - 1).isEmpty()) {
            tokens.remove(tokens.size() - 1);
        }
        return tokens;
    }

    public int vocabSize() {
        return vocab.size();
    }

    public boolean isLowercase() {
        return lowercase;
    }

    public int padId() {
        return padId;
    }

    public int unkId() {
        return unkId;
    }

    public int clsId() {
        return clsId;
    }

    public int sepId() {
        return sepId;
    }

    /** The token of an id. @throws IndexOutOfBoundsException for an id outside the vocabulary */
    public String idToToken(int id) {
        return vocab.get(id);
    }

    /** The id of a token, or {@code [UNK]}'s id if the vocabulary lacks it. */
    public int tokenToId(String token) {
        Integer id = index.get(token);
        return id == null ? unkId : id;
    }

    /** Hugging Face's BertNormalizer: clean the text; for uncased checkpoints NFD, strip Mn, lower-case. */
    public String normalize(String text) {
        StringBuilder clean = new StringBuilder(text.length());
        for (int i = 0; i < text.length(); ) {
            int cp = text.codePointAt(i);
            i += Character.charCount(cp);
            int type = Character.getType(cp);
            if (cp == '\t' || cp == '\n' || cp == '\r' || type == Character.SPACE_SEPARATOR
                    || type == Character.LINE_SEPARATOR || type == Character.PARAGRAPH_SEPARATOR) {
                clean.append(' ');
            } else if (type == Character.CONTROL || type == Character.FORMAT || type == Character.PRIVATE_USE
                    || type == Character.SURROGATE || cp == 0xFFFD) {
                continue;
            } else {
                clean.appendCodePoint(cp);
            }
        }
        if (!lowercase) {
            return clean.toString();
        }
        String nfd = Normalizer.normalize(clean, Normalizer.Form.NFD);
        StringBuilder out = new StringBuilder(nfd.length());
        for (int i = 0; i < nfd.length(); ) {
            int cp = nfd.codePointAt(i);
            i += Character.charCount(cp);
            if (Character.getType(cp) != Character.NON_SPACING_MARK) {
                out.appendCodePoint(Character.toLowerCase(cp)); // per code point: Σ -> σ, never ς
            }
        }
        return out.toString();
    }

    /** BERT's basic tokenizer on normalized text: words, punctuation characters and CJK ideographs. */
    public List<String> basicTokenize(String text) {
        String normalized = normalize(text);
        List<String> words = new ArrayList<>();
        StringBuilder word = new StringBuilder();
        for (int i = 0; i < normalized.length(); ) {
            int cp = normalized.codePointAt(i);
            i += Character.charCount(cp);
            if (cp == ' ' || cp == '\t' || cp == '\n' || cp == '\f' || cp == '\r') {
                flush(word, words);
            } else if (isPunctuation(cp) || isCjk(cp)) {
                flush(word, words);
                words.add(new String(Character.toChars(cp)));
            } else {
                word.appendCodePoint(cp);
            }
        }
        flush(word, words);
        return words;
    }

    private static void flush(StringBuilder word, List<String> words) {
        if (word.length() > 0) {
            words.add(word.toString());
            word.setLength(0);
        }
    }

    /** Unicode punctuation (P*) or an ASCII symbol ({@code !-/ :-@ [-` {-~}), as in BERT. */
    static boolean isPunctuation(int cp) {
        if ((cp >= 0x21 && cp <= 0x2F) || (cp >= 0x3A && cp <= 0x40) || (cp >= 0x5B && cp <= 0x60)
                || (cp >= 0x7B && cp <= 0x7E)) {
            return true;
        }
        switch (Character.getType(cp)) {
            case Character.CONNECTOR_PUNCTUATION:
            case Character.DASH_PUNCTUATION:
            case Character.START_PUNCTUATION:
            case Character.END_PUNCTUATION:
            case Character.INITIAL_QUOTE_PUNCTUATION:
            case Character.FINAL_QUOTE_PUNCTUATION:
            case Character.OTHER_PUNCTUATION:
                return true;
            default:
                return false;
        }
    }

    /** CJK Unified Ideographs blocks (BERT's definition; not Hangul, Hiragana or Katakana). */
    static boolean isCjk(int cp) {
        for (int[] range : CJK_RANGES) {
            if (cp >= range[0] && cp <= range[1]) {
                return true;
            }
        }
        return false;
    }

    /** WordPiece ids of one basic-tokenizer word: greedy longest match, or {@code [UNK]} for the whole word. */
    public int[] wordPiece(String word) {
        int numChars = word.codePointCount(0, word.length());
        if (numChars > MAX_CHARS_PER_WORD) {
            return new int[] {unkId};
        }
        List<Integer> pieces = new ArrayList<>();
        int start = 0;
        while (start < word.length()) {
            Integer match = null;
            int end = word.length();
            while (end > start) {
                String piece = word.substring(start, end);
                if (start > 0) {
                    piece = SUFFIX_INDICATOR + piece;
                }
                if (piece.length() <= maxTokenChars) {
                    match = index.get(piece);
                    if (match != null) {
                        break;
                    }
                }
                end = word.offsetByCodePoints(end, -1); // never split a surrogate pair
            }
            if (match == null) {
                return new int[] {unkId};
            }
            pieces.add(match);
            start = end;
        }
        return toArray(pieces);
    }

    /** WordPiece ids of a text, without special tokens. */
    public int[] tokenize(String text) {
        List<Integer> ids = new ArrayList<>();
        for (String word : basicTokenize(text)) {
            for (int id : wordPiece(word)) {
                ids.add(id);
            }
        }
        return toArray(ids);
    }

    /** Encodes one text: {@code [CLS] a [SEP]}, truncated to {@code maxSeqLen} (at least 2). */
    public Encoding encode(String textA, int maxSeqLen) {
        return encode(textA, null, maxSeqLen);
    }

    /**
     * Encodes a text or a pair, truncating with Hugging Face's {@code longest_first} strategy.
     *
     * @param textA first text (may be empty)
     * @param textB second text, or null for a single-text input
     * @param maxSeqLen length limit including special tokens: at least 2 (single) or 3 (pair)
     * @throws IllegalArgumentException if maxSeqLen leaves no room for the special tokens
     * @throws NullPointerException if textA is null
     */
    public Encoding encode(String textA, String textB, int maxSeqLen) {
        if (textA == null) {
            throw new NullPointerException("textA is null");
        }
        int specials = textB == null ? 2 : 3;
        if (maxSeqLen < specials) {
            throw new IllegalArgumentException("maxSeqLen " + maxSeqLen + " < " + specials
                + " leaves no room for the special tokens");
        }
        int[] a = tokenize(textA);
        int[] b = textB == null ? null : tokenize(textB);
        int budget = maxSeqLen - specials;
        int keepA;
        int keepB = 0;
        if (b == null) {
            keepA = Math.min(a.length, budget);
        } else {
            int[] keep = truncationLengths(a.length, b.length, budget);
            keepA = keep[0];
            keepB = keep[1];
        }
        boolean truncated = keepA < a.length || (b != null && keepB < b.length);
        int length = keepA + 2 + (b == null ? 0 : keepB + 1);
        int[] ids = new int[length];
        int[] segments = new int[length];
        int pos = 0;
        ids[pos++] = clsId;
        for (int i = 0; i < keepA; i++) {
            ids[pos++] = a[i];
        }
        ids[pos++] = sepId;
        if (b != null) {
            for (int i = 0; i < keepB; i++) {
                segments[pos] = 1;
                ids[pos++] = b[i];
            }
            segments[pos] = 1;
            ids[pos++] = sepId;
        }
        return new Encoding(ids, segments, truncated);
    }

    /**
     * Tokens kept per text of a pair, Hugging Face {@code longest_first}: keep both if they fit; else cut only the
     * longer to {@code max(shorter, budget - shorter)}; if that still does not fit, keep {@code budget / 2} of
     * the shorter and {@code budget / 2 + budget % 2} of the longer (on ties the second text is the longer).
     *
     * @param n1 tokens of the first text
     * @param n2 tokens of the second text
     * @param budget tokens available for both texts (max length minus 3), at least 0
     * @return {keep1, keep2}
     */
    public static int[] truncationLengths(int n1, int n2, int budget) {
        if (budget < 0 || n1 < 0 || n2 < 0) {
            throw new IllegalArgumentException("negative length or budget");
        }
        boolean swap = n1 > n2;
        int shorter = Math.min(n1, n2);
        int longKeep = shorter > budget ? shorter : Math.max(shorter, budget - shorter);
        int shortKeep = shorter;
        if (shortKeep + longKeep > budget) {
            shortKeep = budget / 2;
            longKeep = budget / 2 + budget % 2;
        }
        int keep1 = swap ? longKeep : shortKeep;
        int keep2 = swap ? shortKeep : longKeep;
        return new int[] {Math.min(keep1, n1), Math.min(keep2, n2)};
    }

    private static int[] toArray(List<Integer> values) {
        int[] out = new int[values.size()];
        for (int i = 0; i < out.length; i++) {
            out[i] = values.get(i);
        }
        return out;
    }
}
