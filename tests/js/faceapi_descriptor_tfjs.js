// Runs face-api's own FaceRecognitionNet (the library's code, TF.js 4.22 CPU backend) on raw RGB crops.
// usage: node faceapi_descriptor_tfjs.js <node_modules dir> <model dir> <input.f32> <N>
//   input.f32: N x 150 x 150 x 3 float32 RGB levels 0..255, little endian
// prints {"descriptors": [[128 floats], ...], "tfjs": version, "backend": name}
const path = require('path');
const fs = require('fs');

const [modules, modelDir, inputPath, n] = process.argv.slice(2);
const faceapi = require(path.join(modules, '@vladmandic/face-api/dist/face-api.node-wasm.js'));
const tf = faceapi.tf;

(async () => {
  await tf.setBackend('cpu');
  await tf.ready();
  const manifest = JSON.parse(fs.readFileSync(path.join(modelDir, 'face_recognition_model-weights_manifest.json')));
  const shards = manifest[0].paths.map((p) => fs.readFileSync(path.join(modelDir, p)));
  const buf = Buffer.concat(shards);
  const weightMap = tf.io.decodeWeights(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength),
    manifest[0].weights);
  const net = new faceapi.FaceRecognitionNet();
  net.loadFromWeightMap(weightMap);
  const raw = fs.readFileSync(inputPath);
  const data = new Float32Array(raw.buffer, raw.byteOffset, raw.byteLength / 4);
  const count = parseInt(n, 10);
  const faces = [];
  for (let i = 0; i < count; i += 1) {
    faces.push(tf.tensor3d(data.slice(i * 150 * 150 * 3, (i + 1) * 150 * 150 * 3), [150, 150, 3]));
  }
  const out = await net.forward(faces);  // an array of Tensor3D = one batch through the library's NetInput
  const descriptors = await out.array();
  process.stdout.write(JSON.stringify({ descriptors, tfjs: tf.version_core, backend: tf.getBackend() }));
})().catch((err) => { console.error(err); process.exit(1); });
