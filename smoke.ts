import * as tf from '@tensorflow/tfjs-core';
import * as wasm from '@tensorflow/tfjs-backend-wasm';
console.log(Object.keys(wasm).slice(0,10), tf.engine().registryFactory && Object.keys(tf.engine().registryFactory));
await tf.setBackend('wasm'); await tf.ready();
console.log('tf', tf.getBackend(), tf.env().getBool('WASM_HAS_MULTITHREAD_SUPPORT'), tf.env().getBool('WASM_HAS_SIMD_SUPPORT'));
