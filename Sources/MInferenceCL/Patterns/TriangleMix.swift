/// TriangleMix's layer plan (upstream `tri_mix` and `tri_mix_minference`,
/// minference/modules/tri_mix.py; docs/PREFILL-METHODS.md section 3): Tri-shape on every layer
/// from `startingLayer` on, and on the layers before it either dense attention (`tri_mix`) or the
/// model's per-head MInference config (`tri_mix_minference`). It decides per layer, never per head.
///
/// Upstream's effective default is `starting_layer = -1`, every layer Tri-shape (its written
/// default 16 never takes effect, 3.); its TriangleMix material passes 16 for Llama-3.1-8B and
/// Llama-3-8B-262k and 20 for Qwen2.5-7B, with Tri-shape (8, 512, 128).
public struct TriangleMix: Sendable, Hashable {
    /// The first layer (0-based) that runs Tri-shape; 0 (or upstream's -1) runs it on every layer.
    public var startingLayer: Int
    /// The deep layers' pattern: TriangleMix's `n_init = 8`, `n_local = 512`, `n_last = 128` by
    /// default.
    public var triShape: HeadPattern

    /// TriangleMix's defaults for Tri-shape (8, 512, 128). Throws `AttentionError.budget` for a
    /// negative starting layer or a `triShape` that is not a valid Tri-shape.
    public init(startingLayer: Int, triShape: HeadPattern = .triShape(sink: 8, window: 512, last: 128)) throws {
        guard startingLayer >= 0 else {
            throw AttentionError.budget("TriangleMix starting layer must be >= 0 (0 is upstream's -1: every layer Tri-shape), got \(startingLayer)")
        }
        guard triShape.kind == .triShape else {
            throw AttentionError.budget("TriangleMix's deep layers run tri-shape, got \(triShape)")
        }
        try triShape.validate()
        self.startingLayer = startingLayer
        self.triShape = triShape
    }

    /// The plan of layer `layer` (0-based) with `heads` query heads: Tri-shape from the starting
    /// layer on, else `shallow` (the config's layer for `tri_mix_minference`; nil: dense, `tri_mix`).
    public func plan(layer: Int, heads: Int, shallow: LayerPlan? = nil) -> LayerPlan {
        layer >= startingLayer ? .uniform(triShape, heads: heads) : shallow ?? .uniform(.dense, heads: heads)
    }
}
