// libFuzzer entry point for the .npy reader (NPYFile.decode). Any input must either decode or
// throw a TensorFileError; a decoded tensor must survive the operations callers apply to it and
// re-encode to bytes that decode to the same tensor.
@_cdecl("LLVMFuzzerTestOneInput")
public func npyFuzzOne(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    for bf16 in [false, true] {
        do {
            let tensor = try NPYFile.decode(bytes, path: "fuzz.npy", bf16: bf16)
            precondition(tensor.bytes.count == tensor.elementCount * tensor.dtype.byteCount)
            _ = tensor.firstNonFinite()
            _ = try? tensor.checkFinite(name: "fuzz")
            if tensor.elementCount <= 1 << 16 { _ = tensor.floats() }
            let again = try NPYFile.decode(NPYFile.encode(tensor), path: "re-encoded", bf16: true)
            precondition(again.shape == tensor.shape && again.bytes == tensor.bytes, "re-encoding changed the tensor")
        } catch is TensorFileError {
        } catch {
            fatalError("untyped error \(error)")
        }
    }
    return 0
}
