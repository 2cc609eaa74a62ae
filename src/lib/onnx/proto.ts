// The ONNX file format (onnx/onnx.proto, IR version 8) as protobufjs reflection, limited to the
// messages an inference graph needs. protobufjs does the wire encoding and decoding; this file
// only states the messages and their field numbers, which are the format's contract.
import type protobufModule from 'protobufjs';
import { lazyModule } from '../lazy-module.js';

const protobuf = lazyModule<typeof protobufModule>('protobufjs');

/** ONNX IR version 8 (ONNX 1.10+) reads opset 17 and is read by every onnxruntime since 1.10. */
export const IR_VERSION = 8;
export const OPSET = 17;

/** TensorProto.DataType values used here. */
export const DataType = { FLOAT: 1, UINT8: 2, INT8: 3, INT32: 6, INT64: 7 } as const;

/** AttributeProto.AttributeType values used here. */
export const AttributeType = { FLOAT: 1, INT: 2, STRING: 3, TENSOR: 4, FLOATS: 6, INTS: 7 } as const;

const schema = {
  nested: {
    onnx: {
      nested: {
        ModelProto: {
          fields: {
            irVersion: { type: 'int64', id: 1 },
            producerName: { type: 'string', id: 2 },
            producerVersion: { type: 'string', id: 3 },
            domain: { type: 'string', id: 4 },
            modelVersion: { type: 'int64', id: 5 },
            docString: { type: 'string', id: 6 },
            graph: { type: 'GraphProto', id: 7 },
            opsetImport: { rule: 'repeated', type: 'OperatorSetIdProto', id: 8 },
            metadataProps: { rule: 'repeated', type: 'StringStringEntryProto', id: 14 },
          },
        },
        OperatorSetIdProto: { fields: { domain: { type: 'string', id: 1 }, version: { type: 'int64', id: 2 } } },
        StringStringEntryProto: { fields: { key: { type: 'string', id: 1 }, value: { type: 'string', id: 2 } } },
        GraphProto: {
          fields: {
            node: { rule: 'repeated', type: 'NodeProto', id: 1 },
            name: { type: 'string', id: 2 },
            initializer: { rule: 'repeated', type: 'TensorProto', id: 5 },
            docString: { type: 'string', id: 10 },
            input: { rule: 'repeated', type: 'ValueInfoProto', id: 11 },
            output: { rule: 'repeated', type: 'ValueInfoProto', id: 12 },
            valueInfo: { rule: 'repeated', type: 'ValueInfoProto', id: 13 },
          },
        },
        NodeProto: {
          fields: {
            input: { rule: 'repeated', type: 'string', id: 1 },
            output: { rule: 'repeated', type: 'string', id: 2 },
            name: { type: 'string', id: 3 },
            opType: { type: 'string', id: 4 },
            attribute: { rule: 'repeated', type: 'AttributeProto', id: 5 },
            docString: { type: 'string', id: 6 },
            domain: { type: 'string', id: 7 },
          },
        },
        AttributeProto: {
          fields: {
            name: { type: 'string', id: 1 },
            f: { type: 'float', id: 2 },
            i: { type: 'int64', id: 3 },
            s: { type: 'bytes', id: 4 },
            t: { type: 'TensorProto', id: 5 },
            floats: { rule: 'repeated', type: 'float', id: 7 },
            ints: { rule: 'repeated', type: 'int64', id: 8 },
            type: { type: 'int32', id: 20 },
          },
        },
        TensorProto: {
          fields: {
            dims: { rule: 'repeated', type: 'int64', id: 1 },
            dataType: { type: 'int32', id: 2 },
            floatData: { rule: 'repeated', type: 'float', id: 4, options: { packed: true } },
            int32Data: { rule: 'repeated', type: 'int32', id: 5, options: { packed: true } },
            int64Data: { rule: 'repeated', type: 'int64', id: 7, options: { packed: true } },
            name: { type: 'string', id: 8 },
            rawData: { type: 'bytes', id: 9 },
          },
        },
        ValueInfoProto: { fields: { name: { type: 'string', id: 1 }, type: { type: 'TypeProto', id: 2 }, docString: { type: 'string', id: 3 } } },
        TypeProto: {
          fields: { tensorType: { type: 'Tensor', id: 1 } },
          nested: { Tensor: { fields: { elemType: { type: 'int32', id: 1 }, shape: { type: 'TensorShapeProto', id: 2 } } } },
        },
        TensorShapeProto: {
          fields: { dim: { rule: 'repeated', type: 'Dimension', id: 1 } },
          nested: { Dimension: { fields: { dimValue: { type: 'int64', id: 1 }, dimParam: { type: 'string', id: 2 } } } },
        },
      },
    },
  },
};

let modelProto: protobufModule.Type | undefined;
/** The ModelProto message type, built from the schema on first use (not at import). */
function ModelProtoType(): protobufModule.Type {
  return (modelProto ??= protobuf.Root.fromJSON(schema).lookupType('onnx.ModelProto'));
}

export interface TensorInit {
  name: string;
  dims: number[];
  dataType: number;
  rawData: Uint8Array;
}

export interface Attribute {
  name: string;
  type: number;
  f?: number;
  i?: number;
  s?: Uint8Array;
  floats?: number[];
  ints?: number[];
}

export interface NodeInit {
  opType: string;
  name: string;
  input: string[];
  output: string[];
  attribute: Attribute[];
}

export interface ValueInfo {
  name: string;
  /** A number is a fixed size, a string a named dynamic one (e.g. 'batch'); absent: not stated. */
  shape?: Array<number | string>;
  docString?: string;
  /** DataType of the elements (default FLOAT). */
  elemType?: number;
}

export interface ModelInit {
  graphName: string;
  nodes: NodeInit[];
  initializers: TensorInit[];
  inputs: ValueInfo[];
  outputs: ValueInfo[];
  metadata: Record<string, string>;
  producerVersion: string;
  docString?: string;
}

function valueInfo(v: ValueInfo): Record<string, unknown> {
  return {
    name: v.name,
    docString: v.docString ?? '',
    type: { tensorType: { elemType: v.elemType ?? DataType.FLOAT, ...(v.shape ? { shape: { dim: v.shape.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })) } } : {}) } },
  };
}

/** Serialises a model (float32 inputs and outputs unless a ValueInfo says otherwise) to the bytes of a .onnx file. */
export function encodeModel(model: ModelInit): Uint8Array {
  const message = ModelProtoType().fromObject({
    irVersion: IR_VERSION,
    producerName: 'atelier',
    producerVersion: model.producerVersion,
    docString: model.docString ?? '',
    opsetImport: [{ domain: '', version: OPSET }],
    metadataProps: Object.entries(model.metadata).map(([key, value]) => ({ key, value })),
    graph: {
      name: model.graphName,
      node: model.nodes,
      initializer: model.initializers,
      input: model.inputs.map(valueInfo),
      output: model.outputs.map(valueInfo),
    },
  });
  return ModelProtoType().encode(message).finish();
}

/** Reads back a .onnx file's metadata_props and graph input/output names (for tests and `info`). */
export function decodeModelSummary(bytes: Uint8Array): { metadata: Record<string, string>; inputs: string[]; outputs: string[]; opset: number; nodes: string[] } {
  const decoded = ModelProtoType().toObject(ModelProtoType().decode(bytes), { longs: Number }) as {
    metadataProps?: Array<{ key: string; value: string }>;
    opsetImport?: Array<{ version: number }>;
    graph?: { input?: Array<{ name: string }>; output?: Array<{ name: string }>; node?: Array<{ opType: string }> };
  };
  return {
    metadata: Object.fromEntries((decoded.metadataProps ?? []).map((e) => [e.key, e.value])),
    inputs: (decoded.graph?.input ?? []).map((v) => v.name),
    outputs: (decoded.graph?.output ?? []).map((v) => v.name),
    opset: decoded.opsetImport?.[0]?.version ?? 0,
    nodes: (decoded.graph?.node ?? []).map((n) => n.opType),
  };
}
