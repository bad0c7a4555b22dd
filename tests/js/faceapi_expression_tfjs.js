// Runs face-api's own FaceExpressionNet (the library's code, TF.js 4.22 CPU backend) on raw RGB crops.
// usage: node faceapi_expression_tfjs.js <node_modules dir> <model dir> <input.f32> <N>
//   input.f32: N x 112 x 112 x 3 float32 RGB levels 0..255, little endian
// prints {"probs": [[7 floats in face-api's label order], ...], "tfjs": version, "backend": name}
const path = require('path');
const fs = require('fs');

const [modules, modelDir, inputPath, n] = process.argv.slice(2);
const faceapi = require(path.join(modules, '@vladmandic/face-api/dist/face-api.node-wasm.js'));
const tf = faceapi.tf;

(async () => {
  await tf.setBackend('cpu');
  await tf.ready();
  const manifest = JSON.parse(fs.readFileSync(path.join(modelDir, 'face_expression_model-weights_manifest.json')));
  const shards = manifest[0].paths.map((p) => fs.readFileSync(path.join(modelDir, p)));
  const buf = Buffer.concat(shards);
  const weightMap = tf.io.decodeWeights(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength),
    manifest[0].weights);
  const net = new faceapi.FaceExpressionNet();
  net.loadFromWeightMap(weightMap);
  const raw = fs.readFileSync(inputPath);
  const data = new Float32Array(raw.buffer, raw.byteOffset, raw.byteLength / 4);
  const count = parseInt(n, 10);
  const faces = [];
  for (let i = 0; i < count; i += 1) {
    faces.push(tf.tensor3d(data.slice(i * 112 * 112 * 3, (i + 1) * 112 * 112 * 3), [112, 112, 3]));
  }
  const out = await net.forward(faces);  // an array of Tensor3D = one batch through the library's NetInput
  const probs = await out.array();
  process.stdout.write(JSON.stringify({ probs, tfjs: tf.version_core, backend: tf.getBackend() }));
})().catch((err) => { console.error(err); process.exit(1); });
