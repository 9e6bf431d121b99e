import { packageProject } from "../../tools/vitest-project.ts";

export default packageProject("models", ["core/parity", "core", "nn", "text", "vit", "llm", "vlm"]);
