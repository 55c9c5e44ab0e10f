package org.refbert.demo;

import android.os.Bundle;
import android.view.View;
import android.widget.Button;
import android.widget.EditText;
import android.widget.TextView;

import androidx.appcompat.app.AppCompatActivity;

import java.util.Locale;
import java.util.Map;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;

/**
 * One screen: a text box (two for sentence-pair tasks), a button, and the prediction with its latency, e.g.
 * "positive (p=0.97) — 3.1 ms". Loading and inference run on a single background thread, so they never block
 * the UI and never overlap (the interpreter is not thread-safe).
 */
public class MainActivity extends AppCompatActivity {

    private static final int NUM_THREADS = 2;

    private final ExecutorService executor = Executors.newSingleThreadExecutor();
    /** Touched only on the executor's thread. */
    private TextClassifier classifier;
    private Exception loadError;

    private TextView modelInfo;
    private EditText textA;
    private EditText textB;
    private Button runButton;
    private TextView result;

    @Override
    protected void onCreate(Bundle savedInstanceState) {
        super.onCreate(savedInstanceState);
        setContentView(R.layout.activity_main);
        modelInfo = findViewById(R.id.model_info);
        textA = findViewById(R.id.text_a);
        textB = findViewById(R.id.text_b);
        runButton = findViewById(R.id.run_button);
        result = findViewById(R.id.result);
        runButton.setOnClickListener(v -> runClassifier());
        executor.execute(this::loadClassifier);
    }

    @Override
    protected void onDestroy() {
        executor.execute(() -> {
            if (classifier != null) {
                classifier.close();
                classifier = null;
            }
        });
        executor.shutdown();
        super.onDestroy();
    }

    /** On the executor. */
    private void loadClassifier() {
        try {
            classifier = TextClassifier.fromAssets(getAssets(), NUM_THREADS);
        } catch (Exception e) {
            loadError = e;
        }
        final TextClassifier loaded = classifier;
        final String error = loadError == null ? null : describe(loadError);
        final String info = loaded == null ? null : describeModel(loaded.card());
        final boolean pair = loaded != null && loaded.card().isPairTask();
        onUiThread(() -> {
            if (error != null) {
                modelInfo.setText(getString(R.string.error_prefix, error));
                return;
            }
            modelInfo.setText(info);
            textB.setVisibility(pair ? View.VISIBLE : View.GONE);
            runButton.setEnabled(true);
        });
    }

    /** On the UI thread: read the inputs, classify on the executor, show the result. */
    private void runClassifier() {
        final String a = textA.getText().toString();
        final String b = textB.getVisibility() == View.VISIBLE ? textB.getText().toString() : null;
        runButton.setEnabled(false);
        result.setText(R.string.status_running);
        executor.execute(() -> {
            String text;
            try {
                if (classifier == null) {
                    throw new IllegalStateException("the model is not loaded"
                        + (loadError == null ? "" : ": " + describe(loadError)));
                }
                text = format(classifier.classify(a, b), classifier.card());
            } catch (Exception e) {
                text = getString(R.string.error_prefix, describe(e));
            }
            final String shown = text;
            onUiThread(() -> {
                result.setText(shown);
                runButton.setEnabled(true);
            });
        });
    }

    private static String format(TextClassifier.Result r, ModelCard card) {
        StringBuilder out = new StringBuilder(r.summary());
        out.append(String.format(Locale.US, "\n%d tokens%s", r.numTokens, r.truncated ? " (truncated)" : ""));
        if (!r.regression) {
            out.append('\n');
            for (int i = 0; i < r.probabilities.length; i++) {
                String name = i < card.labels.size() ? card.labels.get(i) : "class " + i;
                out.append(String.format(Locale.US, "\n%s: %.3f", name, r.probabilities[i]));
            }
        }
        return out.toString();
    }

    private String describeModel(ModelCard card) {
        StringBuilder out = new StringBuilder();
        out.append(card.task);
        if (card.model != null) {
            out.append(" \u00b7 ").append(card.model);
        }
        if (card.variant != null) {
            out.append(" \u00b7 ").append(card.variant);
        }
        out.append(" \u00b7 max ").append(card.maxSeqLen).append(" tokens");
        for (Map.Entry<String, Double> metric : card.devMetrics.entrySet()) {
            out.append(String.format(Locale.US, "\ndev %s %.2f", metric.getKey(), metric.getValue()));
        }
        return out.toString();
    }

    private static String describe(Exception e) {
        String message = e.getMessage();
        return message == null || message.isEmpty() ? e.getClass().getSimpleName()
            : e.getClass().getSimpleName() + ": " + message;
    }

    private void onUiThread(Runnable action) {
        runOnUiThread(() -> {
            if (!isFinishing() && !isDestroyed()) {
                action.run();
            }
        });
    }
}
