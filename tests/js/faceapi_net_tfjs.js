// Runs one of face-api's own nets (the library's code, TF.js 4.22 CPU backend) on raw RGB crops.
// usage: node faceapi_net_tfjs.js <node_modules dir> <weights manifest> <net class> <input.f32> <N> <side>
//   net class: FaceExpressionNet or FaceRecognitionNet; input.f32: N x side x side x 3 float32 RGB levels
//   0..255, little endian
// prints {"outputs": [[floats], ...], "tfjs": version, "backend": name}: probabilities in face-api's label
// order (FaceExpressionNet) or 128-d descriptors (FaceRecognitionNet)
const path = require('path');
const fs = require('fs');

const [modules, manifestPath, netClass, inputPath, n, sideArg] = process.argv.slice(2);
const faceapi = require(path.join(modules, '@vladmandic/face-api/dist/face-api.node-wasm.js'));
const tf = faceapi.tf;

(async () => {
  await tf.setBackend('cpu');
  await tf.ready();
  const manifest = JSON.parse(fs.readFileSync(manifestPath));
  const shards = manifest[0].paths.map((p) => fs.readFileSync(path.join(path.dirname(manifestPath), p)));
  const buf = Buffer.concat(shards);
  const weightMap = tf.io.decodeWeights(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength),
    manifest[0].weights);
  const net = new faceapi[netClass]();
  net.loadFromWeightMap(weightMap);
  const raw = fs.readFileSync(inputPath);
  const data = new Float32Array(raw.buffer, raw.byteOffset, raw.byteLength / 4);
  const count = parseInt(n, 10);
  const side = parseInt(sideArg, 10);
  const faces = [];
  for (let i = 0; i < count; i += 1) {
    faces.push(tf.tensor3d(data.slice(i * side * side * 3, (i + 1) * side * side * 3), [side, side, 3]));
  }
  const out = await net.forward(faces);  // an array of Tensor3D = one batch through the library's NetInput
  const outputs = await out.array();
  process.stdout.write(JSON.stringify({ outputs, tfjs: tf.version_core, backend: tf.getBackend() }));
})().catch((err) => { console.error(err); process.exit(1); });
