import { defineCommand, UsageError } from '../lib/command.js';
import { backendOption, selectBackend } from '../lib/backend/select.js';
import { tf } from '../lib/backend/tf.js';
import { saveModel } from '../lib/backend/model-io.js';
import { BACKBONE_KIND, loadArtifacts, loadBackbone, nsfwjsArtifacts, type BackboneMetadata } from '../lib/backend/backbone-io.js';
import { defaultCutLayer, parsePreprocessing, PREPROCESSING } from '../lib/models/backbone.js';
import { modelInputSize } from '../lib/models/towers/index.js';

interface Args {
  from: string;
  out: string;
  preprocess?: string;
  backend: string;
}

export default defineCommand<Args>({
  name: 'import-backbone',
  summary: 'turn a pretrained tfjs layers model (or the MobileNetV2 inside the nsfwjs package) into a backbone directory for --backbone',
  description: `Writes a plain atelier model directory (model.json, weights.bin) holding a pretrained network and, in its metadata, the input preprocessing it expects, so that --backbone needs no other flag and every model trained on it reproduces that preprocessing.

--from nsfwjs reads the MobileNetV2 that the nsfwjs npm package (MIT, a devDependency) ships inside its tarball: a Keras MobileNetV2 (224x224, 162 layers, ImageNet-initialised, then fine-tuned on 5 NSFW classes), stored as UMD modules; its weights are 8-bit quantized and are written here as float32 exactly as tfjs dequantizes them when nsfwjs loads the model. Its preprocessing is 'unit' (RGB in [0, 1]).

--from DIR reads a tensorflowjs_converter output (model.json + shards), e.g. of keras.applications.ResNet50(weights="imagenet"); --preprocess then declares what it expects: a preset (unit; tf = x/127.5 - 1 for MobileNetV2; caffe = BGR minus the ImageNet means for ResNet50; torch = ImageNet mean/std on [0, 1]) or scale=S,mean=A:B:C,std=A:B:C,channels=rgb|bgr.

Prints one JSON line: layers, weights, the native input size and the default cut layer (the last feature map before the classifier).`,
  options: {
    from: { describe: '"nsfwjs" or a tfjs layers model directory', type: 'string', demandOption: true },
    out: { alias: 'o', describe: 'backbone directory to write', type: 'string', demandOption: true },
    preprocess: { describe: 'input preprocessing the network expects (default: unit for nsfwjs; required for a directory)', type: 'string' },
    ...backendOption,
  },
  examples: [
    ['atelier import-backbone --from nsfwjs -o backbones/mobilenetv2-nsfwjs', 'the pretrained MobileNetV2 shipped in node_modules'],
    ['atelier import-backbone --from resnet50-tfjs --preprocess caffe -o backbones/resnet50', 'a converted Keras ImageNet ResNet50'],
  ],
  async run(args, io) {
    await selectBackend({ requested: args.backend, env: io.env, stderr: io.stderr });
    let model: tf.LayersModel;
    let source: string;
    let preprocessing = args.preprocess === undefined ? undefined : parsePreprocessing(args.preprocess, '--preprocess');
    if (args.from === 'nsfwjs') {
      model = await loadArtifacts(await nsfwjsArtifacts());
      source = 'nsfwjs/dist/models/mobilenet_v2';
      preprocessing ??= PREPROCESSING.unit;
    } else {
      const loaded = await loadBackbone(args.from);
      model = loaded.model;
      source = args.from;
      preprocessing ??= loaded.preprocessing;
      if (!preprocessing) throw new UsageError('say what input the network expects (unit, tf, caffe, torch or scale=...,mean=...,std=...,channels=...)', { field: '--preprocess' });
    }
    const nativeInput = modelInputSize(model, args.from);
    const metadata: BackboneMetadata = { kind: BACKBONE_KIND, source, preprocessing, nativeInput };
    await saveModel(model, args.out, { metadata });
    io.stdout.write(JSON.stringify({ out: args.out, layers: model.layers.length, weights: model.weights.length, nativeInput, defaultLayer: defaultCutLayer(model), preprocessing }) + '\n');
    model.dispose();
  },
});
