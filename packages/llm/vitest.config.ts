import { packageProject } from "../../tools/vitest-project";

export default packageProject("llm", ["core/parity", "core", "text"]);
