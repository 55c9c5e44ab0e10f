"""Write TFLite Model Metadata into a BERT text classifier (runs in the ``metadata`` tool environment).

Standalone: it imports only tflite-support (``metadata_writers.bert_nl_classifier``), not refbert_tf, because
tflite-support 0.4.4 needs protobuf < 4. Called by :func:`refbert_tf.export.metadata.write_metadata`, which checks
the inputs and the result.
"""

import argparse
import json

from tflite_support.metadata_writers import bert_nl_classifier, metadata_info, writer_utils


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--model", required=True, help="the .tflite file without metadata")
    p.add_argument("--out", required=True, help="where the file with metadata goes")
    p.add_argument(
        "--spec",
        required=True,
        help="JSON: name, description, version, author, licenses, vocab, labels, ids_name, mask_name, segment_name",
    )
    args = p.parse_args()
    spec = json.loads(args.spec)
    model = writer_utils.load_file(args.model)
    general = metadata_info.GeneralMd(
        name=spec["name"],
        version=spec["version"],
        description=spec["description"],
        author=spec["author"],
        licenses=spec["licenses"],
    )
    inputs = metadata_info.BertInputTensorsMd(
        model,
        spec["ids_name"],
        spec["mask_name"],
        spec["segment_name"],
        tokenizer_md=metadata_info.BertTokenizerMd(spec["vocab"]),
    )
    output = metadata_info.ClassificationTensorMd(
        name="logits",
        description=spec["output_description"],
        label_files=[metadata_info.LabelFileMd(file_path=spec["labels"])],
        tensor_type=writer_utils.get_output_tensor_types(model)[0],
    )
    writer = bert_nl_classifier.MetadataWriter.create_from_metadata_info(model, general, inputs, output)
    writer_utils.save_file(writer.populate(), args.out)
    print(writer.get_metadata_json())


if __name__ == "__main__":
    main()
