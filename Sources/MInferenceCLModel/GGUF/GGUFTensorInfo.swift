/// Where a tensor lies in a GGUF file and how it is stored.
///
/// `dimensions` are in ggml order, fastest-varying first (`ne[0]` is the row length), as stored in
/// the file: `token_embd.weight` of a vocabulary of 49152 and width 576 is `[576, 49152]`.
/// `shape` is the same in row-major (NumPy, PyTorch) order, `[49152, 576]`.
public struct GGUFTensorInfo: Sendable, Equatable {
    public let name: String
    /// ggml order: `dimensions[0]` is the row length. At most 4 entries.
    public let dimensions: [Int]
    public let type: GGMLType
    /// Byte offset of the data from the start of the data section (`GGUFFile.dataOffset`).
    public let offset: Int

    public init(name: String, dimensions: [Int], type: GGMLType, offset: Int) {
        self.name = name
        self.dimensions = dimensions
        self.type = type
        self.offset = offset
    }

    /// Row-major order: `dimensions` reversed.
    public var shape: [Int] { dimensions.reversed() }
    public var elementCount: Int { dimensions.reduce(1, *) }
    /// Values per row: `dimensions[0]`, 1 for a scalar.
    public var rowLength: Int { dimensions.first ?? 1 }
    public var rowCount: Int { rowLength == 0 ? 0 : elementCount / rowLength }
    /// Bytes of one row (rows are whole blocks: `rowLength` is a multiple of the block size).
    public var rowByteCount: Int { rowLength / type.blockSize * type.typeSize }
    public var byteCount: Int { rowCount * rowByteCount }
}
