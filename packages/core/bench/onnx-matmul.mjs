// A one-node ONNX model `C = MatMul(A, B)`, written as protobuf bytes by hand (onnx.proto3 field
// numbers), so the benchmark needs no ONNX tooling. B is either a graph input or an initializer.

function varint(n) {
  const out = [];
  let v = BigInt(n);
  do {
    let byte = Number(v & 0x7fn);
    v >>= 7n;
    if (v > 0n) byte |= 0x80;
    out.push(byte);
  } while (v > 0n);
  return out;
}
const concat = (parts) => {
  const len = parts.reduce((s, p) => s + p.length, 0);
  const out = new Uint8Array(len);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
};
/** Field `num` with a varint value (wire type 0). */
const fInt = (num, v) => Uint8Array.from([...varint((num << 3) | 0), ...varint(v)]);
/** Field `num` with bytes (wire type 2): strings, sub-messages, raw tensor data. */
const fBytes = (num, bytes) => {
  const b = typeof bytes === "string" ? new TextEncoder().encode(bytes) : bytes;
  return concat([Uint8Array.from([...varint((num << 3) | 2), ...varint(b.length)]), b]);
};

const FLOAT = 1; // TensorProto.DataType.FLOAT

/** ValueInfoProto for a float tensor of the given shape. */
function valueInfo(name, dims) {
  const shape = concat(dims.map((d) => fBytes(1, fInt(1, d)))); // TensorShapeProto.dim { dim_value }
  const tensorType = concat([fInt(1, FLOAT), fBytes(2, shape)]); // TypeProto.Tensor { elem_type, shape }
  return concat([fBytes(1, name), fBytes(2, fBytes(1, tensorType))]); // { name, type { tensor_type } }
}

/**
 * ModelProto bytes for `C[M,N] = MatMul(A[M,K], B[K,N])` (opset 13). With `weights` (a Float32Array
 * of K·N), B is an initializer, as a Linear layer's weight is in an exported model.
 */
export function matmulModel(M, K, N, weights) {
  const node = concat([fBytes(1, "A"), fBytes(1, "B"), fBytes(2, "C"), fBytes(3, "matmul"), fBytes(4, "MatMul")]);
  const parts = [fBytes(1, node), fBytes(2, "matmul_graph")];
  if (weights) {
    const raw = new Uint8Array(weights.buffer, weights.byteOffset, weights.byteLength);
    const tensor = concat([fInt(1, K), fInt(1, N), fInt(2, FLOAT), fBytes(8, "B"), fBytes(9, raw)]);
    parts.push(fBytes(5, tensor));
  }
  parts.push(fBytes(11, valueInfo("A", [M, K])));
  if (!weights) parts.push(fBytes(11, valueInfo("B", [K, N])));
  parts.push(fBytes(12, valueInfo("C", [M, N])));
  const graph = concat(parts);
  const opset = concat([fBytes(1, ""), fInt(2, 13)]);
  return concat([fInt(1, 8), fBytes(2, "wasmformer-bench"), fBytes(7, graph), fBytes(8, opset)]);
}
