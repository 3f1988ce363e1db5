// libFuzzer entry point for the pattern-config loader (PatternConfig.decode). Any input must
// either load or throw a PatternConfigError; a loaded config must pass or fail its checks with
// a typed error, and one that re-encodes must decode to the same patterns.
@_cdecl("LLVMFuzzerTestOneInput")
public func configFuzzOne(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    do {
        let config = try PatternConfig.decode(bytes, source: "fuzz.json")
        let heads = config.layers.first?.count ?? 0
        for pattern in config.layers.flatMap({ $0 }) { precondition((try? pattern.validate()) != nil, "loaded an invalid budget") }
        _ = try? config.validate(layers: config.layers.count, heads: heads)
        _ = try? config.patterns(layer: config.layers.count - 1, heads: heads)
        if let encoded = try? config.encoded() {
            let again = try PatternConfig.decode(encoded, source: "re-encoded")
            precondition(again.layers == config.layers, "re-encoding changed the patterns")
        }
    } catch is PatternConfigError {
    } catch is AttentionError {
    } catch {
        fatalError("untyped error \(error)")
    }
    return 0
}
