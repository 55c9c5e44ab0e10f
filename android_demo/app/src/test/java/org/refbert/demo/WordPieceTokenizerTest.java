package org.refbert.demo;

import static org.junit.Assert.assertArrayEquals;
import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertFalse;
import static org.junit.Assert.assertTrue;
import static org.junit.Assert.fail;

import java.io.ByteArrayInputStream;
import java.io.File;
import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

import org.junit.BeforeClass;
import org.junit.Test;

/**
 * Checks {@link WordPieceTokenizer} against golden vectors written by the Python package ({@code refbert_tf.golden}).
 *
 * <p>Inputs: system property {@code golden.file} (default: the classpath resource {@code /golden_vectors.jsonl},
 * the committed hand-written edge cases) and {@code vocab.file} (default: the classpath resource
 * {@code /vocab.txt}, e.g. the app's assets added to the test resources). The vocabulary's SHA-256 must equal
 * the one recorded in the golden file's header. Prints {@code GOLDEN: <equal>/<total> cases equal (<pct>%)}.
 */
public class WordPieceTokenizerTest {

    private static Map<String, Object> header;
    private static List<Map<String, Object>> cases;
    private static WordPieceTokenizer uncased;
    private static WordPieceTokenizer cased;
    private static String goldenSource;

    @BeforeClass
    public static void load() throws IOException {
        String goldenProp = System.getProperty("golden.file");
        byte[] golden = goldenProp != null ? readFile(goldenProp, "golden.file")
            : readResource("/golden_vectors.jsonl",
                "set -Dgolden.file=<golden_vectors.jsonl> (written by recipes/make_golden_vectors.py)");
        goldenSource = goldenProp != null ? goldenProp : "classpath:/golden_vectors.jsonl";
        String vocabProp = System.getProperty("vocab.file");
        byte[] vocab = vocabProp != null ? readFile(vocabProp, "vocab.file") : readResource("/vocab.txt",
            "set -Dvocab.file=<the checkpoint's vocab.txt> or put vocab.txt on the test classpath");

        List<String> lines = new ArrayList<>();
        for (String line : new String(golden, StandardCharsets.UTF_8).split("\n")) {
            if (!line.trim().isEmpty()) {
                lines.add(line);
            }
        }
        if (lines.isEmpty()) {
            fail(goldenSource + ": empty golden file");
        }
        header = Json.object(lines.get(0), goldenSource + ":1");
        assertEquals(goldenSource + ": format", "refbert-golden-v1", header.get("format"));
        cases = new ArrayList<>();
        for (int i = 1; i < lines.size(); i++) {
            cases.add(Json.object(lines.get(i), goldenSource + ":" + (i + 1)));
        }
        assertEquals(goldenSource + ": case count in the header", ((Number) header.get("num_cases")).intValue(),
            cases.size());
        assertEquals("vocab.txt is not the vocabulary the golden file was made with", header.get("vocab_sha256"),
            sha256(vocab));
        uncased = WordPieceTokenizer.fromStream(new ByteArrayInputStream(vocab), true);
        cased = WordPieceTokenizer.fromStream(new ByteArrayInputStream(vocab), false);
        assertEquals(((Number) header.get("vocab_size")).intValue(), uncased.vocabSize());
    }

    @Test
    public void matchesEveryGoldenVector() {
        int equal = 0;
        List<String> failures = new ArrayList<>();
        for (Map<String, Object> c : cases) {
            WordPieceTokenizer tok = Boolean.TRUE.equals(c.get("lowercase")) ? uncased : cased;
            String textA = (String) c.get("text_a");
            String textB = (String) c.get("text_b");
            int maxSeqLen = ((Number) c.get("max_seq_len")).intValue();
            int[] wantIds = ints(c.get("token_ids"));
            int[] wantSegs = ints(c.get("segment_ids"));
            WordPieceTokenizer.Encoding got = tok.encode(textA, textB, maxSeqLen);
            if (Arrays.equals(wantIds, got.tokenIds) && Arrays.equals(wantSegs, got.segmentIds)
                    && got.truncated == Boolean.TRUE.equals(c.get("truncated"))) {
                equal++;
            } else if (failures.size() < 20) {
                failures.add(c.get("name") + ": text_a=" + Json.quote(textA)
                    + (textB == null ? "" : " text_b=" + Json.quote(textB)) + " max_seq_len=" + maxSeqLen
                    + "\n  python ids " + Arrays.toString(wantIds) + " segs " + Arrays.toString(wantSegs)
                    + " truncated " + c.get("truncated")
                    + "\n  java   ids " + Arrays.toString(got.tokenIds) + " segs " + Arrays.toString(got.segmentIds)
                    + " truncated " + got.truncated);
            }
        }
        System.out.printf("GOLDEN: %d/%d cases equal (%.2f%%) in %s%n", equal, cases.size(),
            100.0 * equal / Math.max(1, cases.size()), goldenSource);
        if (!failures.isEmpty()) {
            fail((cases.size() - equal) + " of " + cases.size() + " golden cases differ; first ones:\n"
                + String.join("\n", failures));
        }
    }

    @Test
    public void emptyTextIsClsSep() {
        assertArrayEquals(new int[] {uncased.clsId(), uncased.sepId()}, uncased.encode("", 16).tokenIds);
        assertArrayEquals(new int[] {uncased.clsId(), uncased.sepId()}, uncased.encode("\u0000 \u200b", 16).tokenIds);
        WordPieceTokenizer.Encoding pair = uncased.encode("", "", 16);
        assertArrayEquals(new int[] {uncased.clsId(), uncased.sepId(), uncased.sepId()}, pair.tokenIds);
        assertArrayEquals(new int[] {0, 0, 1}, pair.segmentIds);
        assertFalse(pair.truncated);
    }

    @Test
    public void longWordsAreUnknownAndCountCodePoints() {
        int unk = uncased.unkId();
        assertArrayEquals(new int[] {unk}, uncased.tokenize("a".repeat(101)));
        assertTrue(uncased.tokenize("ab".repeat(50)).length > 1);
        // 100 accented letters: 200 code points before NFD stripping, 100 after -> not [UNK]
        assertTrue(uncased.tokenize("\u00e9".repeat(100)).length > 1);
    }

    @Test
    public void paddingAndTruncation() {
        // piece counts depend on the vocabulary (a student vocabulary splits "hello" into hel ##l ##o): at most one
        // piece per letter, 16, so a length of 32 never truncates
        int piecesA = uncased.tokenize("hello world").length;
        int piecesB = uncased.tokenize("second").length;
        WordPieceTokenizer.Encoding enc = uncased.encode("hello world", "second", 32);
        assertFalse(enc.truncated);
        int[] wantSegs = new int[32];
        int[] wantMask = new int[32];
        for (int i = 0; i < piecesA + piecesB + 3; i++) {
            wantSegs[i] = i < piecesA + 2 ? 0 : 1;
            wantMask[i] = 1;
        }
        assertArrayEquals(wantSegs, enc.paddedSegmentIds(32));
        assertArrayEquals(wantMask, enc.paddingMask(32));
        assertEquals(uncased.padId(), enc.paddedTokenIds(32, uncased.padId())[31]);
        WordPieceTokenizer.Encoding cut = uncased.encode("word ".repeat(300), 16);
        assertEquals(16, cut.tokenIds.length);
        assertTrue(cut.truncated);
        assertArrayEquals(new int[] {2, 3}, WordPieceTokenizer.truncationLengths(5, 5, 5));
        assertArrayEquals(new int[] {3, 2}, WordPieceTokenizer.truncationLengths(8, 2, 5));
        assertArrayEquals(new int[] {0, 1}, WordPieceTokenizer.truncationLengths(3, 5, 1));
    }

    @Test(expected = IllegalArgumentException.class)
    public void pairNeedsThreeTokens() {
        uncased.encode("a", "b", 2);
    }

    @Test
    public void vocabularyErrors() throws IOException {
        try {
            WordPieceTokenizer.fromStream(stream("[PAD]\n[UNK]\n[SEP]\nhello\n"), true);
            fail("a vocabulary without [CLS] must be rejected");
        } catch (IllegalArgumentException e) {
            assertTrue(e.getMessage(), e.getMessage().contains("[CLS]"));
        }
        try {
            WordPieceTokenizer.fromStream(stream(""), true);
            fail("an empty vocabulary must be rejected");
        } catch (IllegalArgumentException e) {
            assertTrue(e.getMessage(), e.getMessage().contains("empty"));
        }
        WordPieceTokenizer tiny = WordPieceTokenizer.fromStream(
            stream("[PAD]\r\n[UNK]\r\n[CLS]\r\n[SEP]\r\nun\r\n##aff\r\n##able\r\n"), true);
        assertArrayEquals(new int[] {4, 5, 6}, tiny.tokenize("UNAFFABLE"));
        assertArrayEquals(new int[] {1}, tiny.tokenize("unaffablex"));
    }

    // ------------------------------------------------------------------------------------------------ helpers

    private static InputStream stream(String s) {
        return new ByteArrayInputStream(s.getBytes(StandardCharsets.UTF_8));
    }

    private static byte[] readFile(String path, String property) throws IOException {
        File f = new File(path);
        if (!f.isFile()) {
            fail("-D" + property + "=" + path + ": file not found");
        }
        return Files.readAllBytes(f.toPath());
    }

    private static byte[] readResource(String name, String hint) throws IOException {
        try (InputStream in = WordPieceTokenizerTest.class.getResourceAsStream(name)) {
            if (in == null) {
                fail("resource " + name + " not on the test classpath: " + hint);
            }
            return in.readAllBytes();
        }
    }

    private static String sha256(byte[] data) {
        try {
            StringBuilder hex = new StringBuilder();
            for (byte b : MessageDigest.getInstance("SHA-256").digest(data)) {
                hex.append(String.format("%02x", b));
            }
            return hex.toString();
        } catch (NoSuchAlgorithmException e) {
            throw new AssertionError(e);
        }
    }

    private static int[] ints(Object list) {
        List<?> values = (List<?>) list;
        int[] out = new int[values.size()];
        for (int i = 0; i < out.length; i++) {
            out[i] = ((Number) values.get(i)).intValue();
        }
        return out;
    }

    /**
     * Minimal JSON reader for the golden lines: objects, arrays, strings (all escapes incl. surrogate pairs as
     * two \\uXXXX), integers and decimals, true/false/null. Throws IllegalArgumentException naming the position.
     */
    static final class Json {
        private final String s;
        private final String where;
        private int pos;

        private Json(String s, String where) {
            this.s = s;
            this.where = where;
        }

        @SuppressWarnings("unchecked")
        static Map<String, Object> object(String line, String where) {
            Json json = new Json(line, where);
            Object value = json.value();
            json.skipSpace();
            if (json.pos != line.length() || !(value instanceof Map)) {
                throw json.error("expected one JSON object per line");
            }
            return (Map<String, Object>) value;
        }

        static String quote(String text) {
            StringBuilder out = new StringBuilder("\"");
            for (char c : text.toCharArray()) {
                if (c == '"' || c == '\\') {
                    out.append('\\').append(c);
                } else if (c < 0x20 || c > 0x7E) {
                    out.append(String.format("\\u%04x", (int) c));
                } else {
                    out.append(c);
                }
            }
            return out.append('"').toString();
        }

        private IllegalArgumentException error(String message) {
            return new IllegalArgumentException(where + ": " + message + " at column " + (pos + 1));
        }

        private void skipSpace() {
            while (pos < s.length() && " \t\r\n".indexOf(s.charAt(pos)) >= 0) {
                pos++;
            }
        }

        private Object value() {
            skipSpace();
            if (pos >= s.length()) {
                throw error("unexpected end of line");
            }
            char c = s.charAt(pos);
            switch (c) {
                case '{':
                    return parseObject();
                case '[':
                    return parseArray();
                case '"':
                    return parseString();
                default:
                    if (s.startsWith("true", pos)) {
                        pos += 4;
                        return Boolean.TRUE;
                    }
                    if (s.startsWith("false", pos)) {
                        pos += 5;
                        return Boolean.FALSE;
                    }
                    if (s.startsWith("null", pos)) {
                        pos += 4;
                        return null;
                    }
                    return parseNumber();
            }
        }

        private Map<String, Object> parseObject() {
            Map<String, Object> out = new LinkedHashMap<>();
            pos++; // {
            skipSpace();
            if (pos < s.length() && s.charAt(pos) == '}') {
                pos++;
                return out;
            }
            while (true) {
                skipSpace();
                if (pos >= s.length() || s.charAt(pos) != '"') {
                    throw error("expected a string key");
                }
                String key = parseString();
                skipSpace();
                expect(':');
                out.put(key, value());
                skipSpace();
                if (pos < s.length() && s.charAt(pos) == ',') {
                    pos++;
                } else {
                    expect('}');
                    return out;
                }
            }
        }

        private List<Object> parseArray() {
            List<Object> out = new ArrayList<>();
            pos++; // [
            skipSpace();
            if (pos < s.length() && s.charAt(pos) == ']') {
                pos++;
                return out;
            }
            while (true) {
                out.add(value());
                skipSpace();
                if (pos < s.length() && s.charAt(pos) == ',') {
                    pos++;
                } else {
                    expect(']');
                    return out;
                }
            }
        }

        private String parseString() {
            pos++; // opening quote
            StringBuilder out = new StringBuilder();
            while (true) {
                if (pos >= s.length()) {
                    throw error("unterminated string");
                }
                char c = s.charAt(pos++);
                if (c == '"') {
                    return out.toString();
                }
                if (c != '\\') {
                    out.append(c);
                    continue;
                }
                if (pos >= s.length()) {
                    throw error("unterminated escape");
                }
                char e = s.charAt(pos++);
                switch (e) {
                    case '"': out.append('"'); break;
                    case '\\': out.append('\\'); break;
                    case '/': out.append('/'); break;
                    case 'b': out.append('\b'); break;
                    case 'f': out.append('\f'); break;
                    case 'n': out.append('\n'); break;
                    case 'r': out.append('\r'); break;
                    case 't': out.append('\t'); break;
                    case 'u':
                        if (pos + 4 > s.length()) {
                            throw error("short \\u escape");
                        }
                        try {
                            out.append((char) Integer.parseInt(s.substring(pos, pos + 4), 16));
                        } catch (NumberFormatException ex) {
                            throw error("bad \\u escape");
                        }
                        pos += 4;
                        break;
                    default:
                        throw error("bad escape \\" + e);
                }
            }
        }

        private Number parseNumber() {
            int start = pos;
            while (pos < s.length() && "+-0123456789.eE".indexOf(s.charAt(pos)) >= 0) {
                pos++;
            }
            String text = s.substring(start, pos);
            if (text.isEmpty()) {
                throw error("unexpected character '" + s.charAt(pos) + "'");
            }
            try {
                if (text.matches("-?\\d+")) {
                    return Long.parseLong(text);
                }
                return Double.parseDouble(text);
            } catch (NumberFormatException ex) {
                throw error("bad number " + text);
            }
        }

        private void expect(char c) {
            if (pos >= s.length() || s.charAt(pos) != c) {
                throw error("expected '" + c + "'");
            }
            pos++;
        }
    }
}
